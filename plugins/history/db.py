"""The run database: where it is, how it is opened, its tables, and its migrations.

SQLAlchemy 2 Core; the schema is versioned with Alembic (``migrations/``, shipped with the
package and run programmatically). The default is SQLite in the user data dir
(platformdirs), in WAL mode with a busy timeout, and every write transaction begins
``IMMEDIATE`` so two hbench processes on one machine queue instead of failing with
"database is locked". ``--db URL`` / ``HBENCH_DB`` selects PostgreSQL (psycopg 3).

Tables (keys in brackets):

* ``runs`` [run_id]: one ``hbench run`` (a ``--resume`` continues the same run).
* ``lanes`` [id; unique name + served_model + fingerprint + suite_sha256]: the identity of
  what was measured, so runs of different things never merge.
* ``lane_runs`` [id; unique run_id + lane_id]: a lane in a run: the scorecard's figures
  and the whole scorecard JSON.
* ``prompts`` [id; unique lane_run_id + prompt_id]: per-prompt figures of a lane in a run.
* ``attempts`` [id; unique lane_run_id + prompt_id + n]: pass, runaway, errored, wall
  time, tokens. No transcripts: they stay in the journal.

This module imports SQLAlchemy at import time: import it only where the database is used.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from hbench.errors import BadInput

from hbench.plugins.history.where import ENV_DB, HEAD, describe, exists, redact_url, resolve_url  # noqa: F401

metadata = sa.MetaData()

runs = sa.Table(
    "runs", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("started_at", sa.String(40), nullable=False, server_default=""),
    sa.Column("started_ts", sa.Float, nullable=True),  # seconds since the epoch (UTC), for --since and order
    sa.Column("finished_at", sa.String(40), nullable=False, server_default=""),
    sa.Column("host", sa.String(255), nullable=False, server_default=""),
    sa.Column("hbench_version", sa.String(64), nullable=False, server_default=""),
)

lanes = sa.Table(
    "lanes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("served_model", sa.String(255), nullable=False, server_default=""),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("suite_sha256", sa.String(64), nullable=False),
    sa.Column("suite_name", sa.String(255), nullable=False, server_default=""),
    sa.Column("suite_version", sa.String(64), nullable=False, server_default=""),
    sa.Column("kind", sa.String(64), nullable=False, server_default=""),
    sa.Column("model", sa.String(255), nullable=False, server_default=""),
    sa.Column("base_url", sa.String(1024), nullable=False, server_default=""),  # never with credentials
    sa.UniqueConstraint("name", "served_model", "fingerprint", "suite_sha256", name="uq_lanes_identity"),
)

lane_runs = sa.Table(
    "lane_runs", metadata,
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
    sa.Column("scorecard", sa.Text, nullable=False),  # the whole scorecard JSON (hbench.scorecard/1)
    # revision 0002
    sa.Column("complete", sa.Boolean, nullable=True),
    sa.Column("incomplete_reason", sa.Text, nullable=True),
    sa.UniqueConstraint("run_id", "lane_id", name="uq_lane_runs_run_lane"),
    sa.Index("ix_lane_runs_lane_finished", "lane_id", "finished_ts"),
)

prompts = sa.Table(
    "prompts", metadata,
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

attempts = sa.Table(
    "attempts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lane_run_id", sa.Integer, sa.ForeignKey("lane_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("prompt_id", sa.String(255), nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("runaway", sa.Text, nullable=True),
    sa.Column("errored", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("wall_s", sa.Float, nullable=False),
    # revision 0002
    sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("lane_run_id", "prompt_id", "n", name="uq_attempts_lane_run_prompt_n"),
)


# --------------------------------------------------------------------------- engines

_engines: dict[str, sa.Engine] = {}
_ready: set[str] = set()
_lock = threading.Lock()


def _sqlite_file(url: str) -> Path | None:
    u = sa.engine.make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def _make_engine(url: str) -> sa.Engine:
    path = _sqlite_file(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(f"run database {path}: cannot create its folder ({exc.strerror or exc}); "
                           f"pass --db PATH or set {ENV_DB}") from None
        engine = sa.create_engine(url, connect_args={"timeout": 60, "isolation_level": None})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout = 60000")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            # a writer takes the write lock up front: no lock upgrade that could fail at once
            mode = "IMMEDIATE" if conn.get_execution_options().get("hbench_write") else "DEFERRED"
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    if sa.engine.make_url(url).get_backend_name() == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise BadInput("a PostgreSQL run database needs psycopg 3: pip install 'hermes-bench[postgres]'") from None
    return sa.create_engine(url, pool_pre_ping=True)


def engine_for(url: str | None = None) -> sa.Engine:
    """An engine for the run database, migrated to :data:`HEAD` (once per process)."""
    full = resolve_url(url)
    with _lock:
        eng = _engines.get(full)
        if eng is None:
            eng = _engines[full] = _make_engine(full)
        if full not in _ready:
            try:
                migrate(eng)
            except sa.exc.OperationalError as exc:
                raise BadInput(f"run database {describe(full)}: cannot open it ({_first_line(exc)}); "
                               f"check --db / {ENV_DB}") from None
            _ready.add(full)
    return eng


def dispose_all() -> None:
    """Close every engine (tests; a fork)."""
    with _lock:
        for eng in _engines.values():
            eng.dispose()
        _engines.clear()
        _ready.clear()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return redact_url(text.strip().splitlines()[0] if text.strip() else type(exc).__name__)


def write_conn(engine: sa.Engine) -> Any:
    """``with write_conn(engine) as conn:`` one write transaction (BEGIN IMMEDIATE on SQLite)."""
    return engine.execution_options(hbench_write=True).begin()


# --------------------------------------------------------------------------- migrations


def current_revision(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: sa.Engine, target: str = "head", *, fresh: str = "create") -> None:
    """Bring the schema to ``target`` with Alembic. Cheap when it is already there (one
    query, Alembic is not imported). Concurrent first opens are serialised (a file lock
    beside a SQLite database, an advisory lock on PostgreSQL).

    A new, empty database going to head is built from the tables above and stamped with
    :data:`HEAD` (``fresh="create"``: Alembic's "build from scratch" recipe, ~0.5 s less than
    importing Alembic and replaying every revision); ``fresh="migrate"`` replays them (the
    test that both give one schema uses it)."""
    if target == "head":
        with engine.connect() as conn:
            if current_revision(conn) == HEAD:
                return
    path = _sqlite_file(str(engine.url))
    if path is not None:
        from filelock import FileLock

        with FileLock(str(path) + ".migrate.lock", timeout=120):
            _upgrade(engine, target, fresh)
    else:
        _upgrade(engine, target, fresh)


def _upgrade(engine: sa.Engine, target: str, fresh: str) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(481516)")
        insp = sa.inspect(conn)
        if target == "head" and fresh == "create" and not any(insp.has_table(t) for t in
                                                              ("alembic_version", *metadata.tables)):
            metadata.create_all(conn)
            version = sa.Table("alembic_version", sa.MetaData(),
                               sa.Column("version_num", sa.String(32), primary_key=True))
            version.create(conn)
            conn.execute(version.insert().values(version_num=HEAD))
            return
        if current_revision(conn) == HEAD and target == "head":
            return  # another process got there while this one waited for the lock
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)
