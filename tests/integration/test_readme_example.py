"""The README's library example runs as written, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

README = Path(__file__).resolve().parents[2] / "README.md"


async def test_readme_library_example(db_url: str, monkeypatch: Any) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    monkeypatch.setenv("QX_DB__URL", db_url)
    # A real module, as a service's file would be (dataclasses look their module up).
    module = types.ModuleType("readme_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(blocks[0], "README.md", "exec"), module.__dict__)
    namespace = module.__dict__
    engine = namespace["engine"]
    try:
        async with engine.begin() as conn:
            await conn.run_sync(namespace["metadata"].create_all)
        user = await namespace["register"]("ada@example.com")
        async with engine.connect() as conn:
            users = namespace["users"]
            outbox = namespace["metadata"].tables["qx_outbox_events"]
            assert (
                await conn.execute(select(users.c.email).where(users.c.id == user.id))
            ).scalar_one() == ("ada@example.com")
            row = (await conn.execute(select(outbox.c.event_name, outbox.c.payload))).one()
            assert row.event_name == "users.registered"
            assert row.payload["payload"] == {"email": "ada@example.com"}
            assert (await conn.execute(select(func.count()).select_from(outbox))).scalar_one() == 1
    finally:
        await engine.dispose()
