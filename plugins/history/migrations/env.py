"""Alembic environment for the run database. hbench runs migrations programmatically
(:func:`hbench.plugins.history.db.migrate`) on the connection it passes in
``config.attributes["connection"]``; there is no alembic.ini."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, render_as_batch=True,
                  transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
