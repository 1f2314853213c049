"""Alembic environment for the index database.

Called by ``indexer.database.upgrade()/downgrade()`` with the engine in
``config.attributes["engine"]``, or by the ``alembic`` command (``-c indexer/alembic.ini``,
optionally ``-x url=...``) with a URL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from indexer.database import create_engine_for
from indexer.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    from_x = context.get_x_argument(as_dictionary=True).get("url")
    return from_x or config.get_main_option("sqlalchemy.url") or ""


def run_migrations_offline() -> None:
    context.configure(
        url=str(_url()),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine: Engine | None = config.attributes.get("engine")
    owned = engine is None
    if engine is None:
        engine = create_engine_for(_url())
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies tables
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        if owned:
            engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
