"""The first run database: runs, lanes, lanes in runs, prompts, attempts.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("started_at", sa.String(40), nullable=False, server_default=""),
        sa.Column("started_ts", sa.Float, nullable=True),
        sa.Column("finished_at", sa.String(40), nullable=False, server_default=""),
        sa.Column("host", sa.String(255), nullable=False, server_default=""),
        sa.Column("hbench_version", sa.String(64), nullable=False, server_default=""),
    )
    op.create_table(
        "lanes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("served_model", sa.String(255), nullable=False, server_default=""),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("suite_sha256", sa.String(64), nullable=False),
        sa.Column("suite_name", sa.String(255), nullable=False, server_default=""),
        sa.Column("suite_version", sa.String(64), nullable=False, server_default=""),
        sa.Column("kind", sa.String(64), nullable=False, server_default=""),
        sa.Column("model", sa.String(255), nullable=False, server_default=""),
        sa.Column("base_url", sa.String(1024), nullable=False, server_default=""),
        sa.UniqueConstraint("name", "served_model", "fingerprint", "suite_sha256", name="uq_lanes_identity"),
    )
    op.create_table(
        "lane_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
        sa.Column("lane_id", sa.Integer, sa.ForeignKey("lanes.id"), nullable=False),
        sa.Column("started_at", sa.String(40), nullable=False, server_default=""),
        sa.Column("finished_at", sa.String(40), nullable=False, server_default=""),
        sa.Column("finished_ts", sa.Float, nullable=True),
        sa.Column("core_pass", sa.Integer, nullable=False),
        sa.Column("core_n", sa.Integer, nullable=False),
        sa.Column("pass_rate", sa.Float, nullable=False),
        sa.Column("ci_low", sa.Float, nullable=True),
        sa.Column("ci_high", sa.Float, nullable=True),
        sa.Column("consistency", sa.Float, nullable=True),
        sa.Column("runaway_rate", sa.Float, nullable=True),
        sa.Column("correct_tool_rate", sa.Float, nullable=True),
        sa.Column("format_error_rate", sa.Float, nullable=True),
        sa.Column("error_rate", sa.Float, nullable=True),
        sa.Column("rankable", sa.Boolean, nullable=False),
        sa.Column("failed", sa.Text, nullable=True),
        sa.Column("attempts_run", sa.Integer, nullable=False, server_default="0"),
        sa.Column("tok_s", sa.Float, nullable=True),
        sa.Column("scorecard", sa.Text, nullable=False),
        sa.UniqueConstraint("run_id", "lane_id", name="uq_lane_runs_run_lane"),
    )
    op.create_table(
        "prompts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("lane_run_id", sa.Integer, sa.ForeignKey("lane_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("prompt_id", sa.String(255), nullable=False),
        sa.Column("category", sa.String(255), nullable=False, server_default=""),
        sa.Column("core", sa.Boolean, nullable=False),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("passes", sa.Integer, nullable=False),
        sa.Column("pass_rate", sa.Float, nullable=False),
        sa.Column("majority_pass", sa.Boolean, nullable=False),
        sa.Column("skipped", sa.Text, nullable=True),
        sa.Column("gate", sa.String(64), nullable=True),
        sa.UniqueConstraint("lane_run_id", "prompt_id", name="uq_prompts_lane_run_prompt"),
    )
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("lane_run_id", sa.Integer, sa.ForeignKey("lane_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("prompt_id", sa.String(255), nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("runaway", sa.Text, nullable=True),
        sa.Column("errored", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("wall_s", sa.Float, nullable=False),
        sa.UniqueConstraint("lane_run_id", "prompt_id", "n", name="uq_attempts_lane_run_prompt_n"),
    )


def downgrade() -> None:
    for table in ("attempts", "prompts", "lane_runs", "lanes", "runs"):
        op.drop_table(table)
