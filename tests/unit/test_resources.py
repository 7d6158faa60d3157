from __future__ import annotations

import pytest

from qxdb.resources import resource_dir


@pytest.mark.parametrize("name", ["alembic_templates", "completions"])
def test_shipped_folders_are_found(name: str) -> None:
    folder = resource_dir(name)
    assert folder.is_dir()
    assert any(folder.iterdir())


def test_unknown_resource_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        resource_dir("nope")
