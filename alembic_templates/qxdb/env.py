"""Alembic environment of this service, laid down by ``qxdb migrate init``.

The database URL is not in alembic.ini: it comes from QX_DB__URL (or
``qxdb --database-url ...``); the models come from ``[qxdb] metadata`` in alembic.ini.
This file is yours to edit: ``run_async_migrations`` passes extra keyword arguments on to
``context.configure`` (``include_object=...``, ``include_schemas=True``, ...).
"""

from __future__ import annotations

from alembic import context

from qxdb.migrations.env import run_async_migrations, target_metadata_from_config

# To import the models directly instead: from myservice.models import metadata
target_metadata = target_metadata_from_config(context.config)

run_async_migrations(target_metadata)
