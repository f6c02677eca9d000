"""Tokens per attempt, whether a lane in a run is complete, and an index for history.

Scorecards now carry each attempt's prompt and completion tokens; issue 14's
``complete`` / ``incomplete_reason`` say whether every planned attempt was scored; and
``LANE@-1`` / trends read a lane's runs newest first (lane_id, finished_ts).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"))
    with op.batch_alter_table("lane_runs") as batch:
        batch.add_column(sa.Column("complete", sa.Boolean, nullable=True))
        batch.add_column(sa.Column("incomplete_reason", sa.Text, nullable=True))
    op.create_index("ix_lane_runs_lane_finished", "lane_runs", ["lane_id", "finished_ts"])


def downgrade() -> None:
    op.drop_index("ix_lane_runs_lane_finished", table_name="lane_runs")
    with op.batch_alter_table("lane_runs") as batch:
        batch.drop_column("incomplete_reason")
        batch.drop_column("complete")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("completion_tokens")
        batch.drop_column("prompt_tokens")
