"""Alembic environment: always handed a live connection by tagwarden.migrations."""

from __future__ import annotations

import warnings
from typing import Any

from alembic import context

from tagwarden.models import Base

target_metadata = Base.metadata


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    # Indexes that exist only on PostgreSQL (GIN on JSONB) are not drift on SQLite.
    dialect = context.get_context().dialect.name
    info = getattr(obj, "info", None) or getattr(compare_to, "info", None) or {}
    return not (type_ == "index" and info.get("postgresql_only") and dialect != "postgresql")


# SQLite cannot reflect the expression index behind "one pending request per image and tag", so
# Alembic can only say it skipped it; the migration creates it and the tests prove it holds.
warnings.filterwarnings("ignore", message="autogenerate skipping metadata-specified expression")
warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based")

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `tagwarden db upgrade`, which supplies a connection")

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    include_object=include_object,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
