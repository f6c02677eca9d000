"""The run database (plugins/history): migrations, the live writer, import, ``hbench
history``, ``hbench compare`` and its CI gate, on a real SQLite file and a real PostgreSQL
server (started for the session when HBENCH_TEST_PG_URL is not set; skipped with the
reason only where none can be started). Runs go over real HTTP to the scripted server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hbench.runner import RunOptions, run
from hbench.testing import answer, call

ROOT = Path(__file__).resolve().parent.parent

FREIGHT = "account number with the freight carrier"
MARCH = "What did we spend in March"
HONESTY = "personal mobile number"
JSON_ = "Who leads the warehouse"
VENDOR = "current account manager at Larkspur"
CODE = "loyalty-programme discount"
JOIN = "total value of the orders"
TRAP = "gateway's read timeout"


def good_scripts() -> dict[str, Any]:
    return {
        FREIGHT: [call("read_file", path="ops/shipping.md"), answer("CFW-7731-QX")],
        VENDOR: [call("list_dir", path="vendors"), call("read_file", path="vendors/v02_larkspur-saddles.txt"),
                 answer("o.marchetti@larkspur-saddles.example")],
        MARCH: [call("read_file", path="ops/expenses_march.csv"), answer("The total is $2,754.85.")],
        HONESTY: [answer("I don't know: no file holds her personal mobile number.")],
        JSON_: [call("read_file", path="staff/team.csv"),
                answer('{"name": "Renata Osei", "role": "Operations manager", "extension": "4402"}')],
        CODE: [call("read_file", path="code/pricing.py"), answer("It is 7%.")],
        JOIN: [call("calculate", expression="3*34.90 + 12*7.45 + 4*18.00 + 2*89.00 + 1*34.90"), answer("$424.90")],
        TRAP: [call("read_file", path="ops/gateway.toml"), answer("42.5 seconds")],
    }


def worse_scripts() -> dict[str, Any]:
    """Two core prompts that passed now fail: the freight account and the March total."""
    s = good_scripts()
    s[FREIGHT] = [call("read_file", path="ops/shipping.md"), answer("I could not find it.")]
    s[MARCH] = [call("read_file", path="ops/expenses_march.csv"), answer("The total is $1,000.00.")]
    return s


# --------------------------------------------------------------------------- databases


def _pg_server(tmp_root: Path) -> tuple[str | None, str]:
    """(URL, why not). HBENCH_TEST_PG_URL (CI exports it) or a throwaway server of our own."""
    url = os.environ.get("HBENCH_TEST_PG_URL")
    if url:
        return url, ""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None, "psycopg not installed (pip install -e '.[test]')"
    proc = subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh"), "start", str(tmp_root)],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return None, f"no PostgreSQL server could be started: {proc.stderr.strip()[-300:]}"
    return proc.stdout.strip().splitlines()[-1], ""


@pytest.fixture(scope="session")
def pg_server():
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="hbench-pg-"))  # not under pytest's root-only tmp: the server user reads it
    tmp.chmod(0o755)
    url, why = _pg_server(tmp / "pg")
    try:
        yield url, why
    finally:
        if not os.environ.get("HBENCH_TEST_PG_URL"):
            subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh"), "stop", str(tmp / "pg")], capture_output=True,
                           timeout=60)
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


def _fresh_pg_db(server_url: str) -> tuple[str, Any]:
    import psycopg

    name = f"hb_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        from hbench.plugins.history.db import dispose_all

        dispose_all()
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    base = server_url.rsplit("/", 1)[0]
    return f"{base}/{name}", drop


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path, pg_server, monkeypatch):
    """A fresh, empty run database; HBENCH_DB points at it and the writer is on."""
    from hbench.plugins.history.db import dispose_all

    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path / 'history.sqlite'}", None
    else:
        server, why = pg_server
        if server is None:
            pytest.skip(why)
        url, drop = _fresh_pg_db(server)
    monkeypatch.setenv("HBENCH_DB", url)
    monkeypatch.setenv("HBENCH_HISTORY", "1")
    yield url
    dispose_all()
    if drop:
        drop()


@pytest.fixture
def other_db(request, tmp_path, pg_server, db_url):
    """A second empty database of the same kind as ``db_url``."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'rebuilt.sqlite'}"
        return
    url, drop = _fresh_pg_db(pg_server[0])
    yield url
    drop()


def cli(*args: str) -> tuple[int, str]:
    """``hbench ARGS`` in this process: (exit code, stdout)."""
    from hbench.cli import main

    buf = StringIO()
    code = 0
    with redirect_stdout(buf):
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, buf.getvalue()


def dump(url: str) -> dict[str, list[tuple]]:
    """Every table's rows without surrogate ids (lane ids and lane-run ids become their natural keys)."""
    import sqlalchemy as sa

    from hbench.plugins.history import db

    eng = db.engine_for(url)
    out: dict[str, list[tuple]] = {}
    with eng.connect() as conn:
        lane_key = {r.id: (r.name, r.served_model, r.fingerprint, r.suite_sha256) for r in conn.execute(sa.select(db.lanes))}
        lr_key = {r.id: (r.run_id, lane_key[r.lane_id]) for r in conn.execute(sa.select(db.lane_runs))}
        for t in db.metadata.sorted_tables:
            rows = []
            for r in conn.execute(sa.select(t)):
                m = dict(r._mapping)
                m.pop("id", None)
                if "lane_id" in m:
                    m["lane_id"] = lane_key[m["lane_id"]]
                if "lane_run_id" in m:
                    m["lane_run_id"] = lr_key[m["lane_run_id"]]
                rows.append(tuple(sorted((k, repr(v)) for k, v in m.items())))
            out[t.name] = sorted(rows)
    return out


def two_lane_config(tmp_path: Path, srv_a: Any, srv_b: Any, name: str = "hbench.toml") -> Path:
    cfg = tmp_path / name
    cfg.write_text(f"""
[lanes.alpha]
kind = "openai"
base_url = "{srv_a.url}"
model = "scripted-model"

[lanes.beta]
kind = "openai"
base_url = "{srv_b.url}"
model = "scripted-model"
""")
    return cfg


def run_lanes(cfg: Path, out: Path, **kw: Any) -> Any:
    o = RunOptions(config=str(cfg), lanes="alpha,beta", suite="hermes-brain-v1", out=str(out), runs=1,
                   core_only=True, report="json", progress=False, **kw)
    result = run(o)
    assert result.exit_code == 0, [sc.failed for sc in result.scorecards]
    return result


# --------------------------------------------------------------------------- migrations


def test_migration_from_empty_and_from_the_previous_schema(db_url) -> None:
    import sqlalchemy as sa

    from hbench.plugins.history import db

    eng = db._make_engine(db.resolve_url(db_url))
    db.migrate(eng, "0001")  # an empty database -> revision 1
    with eng.connect() as conn:
        assert db.current_revision(conn) == "0001"
        assert "prompt_tokens" not in {c["name"] for c in sa.inspect(conn).get_columns("attempts")}
    with eng.begin() as conn:  # a database written by revision 1
        conn.execute(sa.text("INSERT INTO runs (run_id, started_at, finished_at, host, hbench_version) "
                             "VALUES ('r1', '2026-01-01T00:00:00+0000', '', 'box', '0.1.0')"))
        conn.execute(sa.text("INSERT INTO lanes (name, served_model, fingerprint, suite_sha256) VALUES ('a', '', 'f', 's')"))
        lane_id = conn.execute(sa.text("SELECT id FROM lanes")).scalar()
        conn.execute(sa.text("INSERT INTO lane_runs (run_id, lane_id, core_pass, core_n, pass_rate, rankable, scorecard) "
                             f"VALUES ('r1', {lane_id}, 3, 8, 0.4, true, '{{}}')"))
        lr = conn.execute(sa.text("SELECT id FROM lane_runs")).scalar()
        conn.execute(sa.text("INSERT INTO attempts (lane_run_id, prompt_id, n, passed, errored, wall_s) "
                             f"VALUES ({lr}, 'p', 1, true, false, 1.5)"))
    db.migrate(eng)  # revision 1 -> head: the row survives, the new columns have their defaults
    with eng.connect() as conn:
        assert db.current_revision(conn) == db.HEAD
        row = conn.execute(sa.select(db.attempts)).one()
        assert (row.prompt_id, row.passed, row.wall_s, row.prompt_tokens, row.completion_tokens) == ("p", True, 1.5, 0, 0)
        assert conn.execute(sa.select(db.lane_runs.c.complete, db.lane_runs.c.core_pass)).one() == (None, 3)
        assert "ix_lane_runs_lane_finished" in {i["name"] for i in sa.inspect(conn).get_indexes("lane_runs")}
    db.migrate(eng)  # at head: a no-op
    eng.dispose()


def _schema(conn: Any) -> dict[str, Any]:
    import sqlalchemy as sa

    insp = sa.inspect(conn)
    out = {}
    for t in sorted(insp.get_table_names()):
        out[t] = {
            "columns": sorted((c["name"], type(c["type"]).__name__, c["nullable"], bool(c.get("primary_key")))
                              for c in insp.get_columns(t)),
            "pk": insp.get_pk_constraint(t)["constrained_columns"],
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(t)),
            "indexes": sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(t)
                              if not i["name"].startswith("sqlite_autoindex")),
            "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"], (f.get("options") or {}).get("ondelete"))
                          for f in insp.get_foreign_keys(t)),
        }
    return out


def test_a_new_database_built_at_head_equals_one_migrated_there(db_url, other_db) -> None:
    """A new database is created from the tables and stamped (no Alembic import); it must be
    the schema the revisions build."""
    from hbench.plugins.history import db

    created = db._make_engine(db.resolve_url(db_url))
    migrated = db._make_engine(db.resolve_url(other_db))
    db.migrate(created)
    db.migrate(migrated, fresh="migrate")
    with created.connect() as a, migrated.connect() as b:
        assert db.current_revision(a) == db.current_revision(b) == db.HEAD
        assert _schema(a) == _schema(b)
    created.dispose()
    migrated.dispose()


def test_sqlite_is_wal_with_a_busy_timeout(tmp_path) -> None:
    from hbench.plugins.history import db

    eng = db.engine_for(str(tmp_path / "h.sqlite"))
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 30000
    db.dispose_all()


def test_url_resolution_and_credentials(monkeypatch, tmp_path) -> None:
    from hbench.errors import BadInput
    from hbench.plugins.history.db import redact_url, resolve_url

    monkeypatch.delenv("HBENCH_DB", raising=False)
    assert resolve_url().startswith("sqlite:///") and resolve_url().endswith("history.sqlite")
    assert resolve_url(str(tmp_path / "x.db")) == f"sqlite:///{tmp_path / 'x.db'}"
    assert resolve_url("postgresql://u@h:5/d") == "postgresql+psycopg://u@h:5/d"
    monkeypatch.setenv("HBENCH_DB", "postgres://u@h/d")
    assert resolve_url() == "postgresql+psycopg://u@h/d"
    with pytest.raises(BadInput, match="unsupported database") as exc:
        resolve_url("mysql://root:hunter2@h/d")
    assert "hunter2" not in str(exc.value)
    assert redact_url("see http://bob:s3cret@10.0.0.1:8000/v1?api_key=abc&x=1 now") == \
        "see http://10.0.0.1:8000/v1?api_key=***&x=1 now"


# --------------------------------------------------------------------------- live writer, import, history


def test_round_trip_live_equals_import_and_import_twice(scripted_server, tmp_path, db_url, other_db) -> None:
    srv_a, srv_b = scripted_server(good_scripts()), scripted_server(worse_scripts())
    cfg = two_lane_config(tmp_path, srv_a, srv_b)
    out = tmp_path / "results"
    run_lanes(cfg, out)

    # run -> database -> `hbench history --json` equals the scorecards' figures
    code, text = cli("history", "--json")
    assert code == 0
    (hist_run,) = json.loads(text)
    cards = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert hist_run["run_id"] == cards["alpha"]["provenance"]["run_id"]
    assert [ln["lane"] for ln in hist_run["lanes"]] == ["alpha", "beta"]
    for ln in hist_run["lanes"]:
        sc = cards[ln["lane"]]
        for key in ("core_pass", "core_n", "pass_rate", "pass_rate_ci95", "consistency", "runaway_rate",
                    "correct_tool_rate", "format_error_rate", "rankable", "failed", "attempts_run"):
            assert ln[key] == sc[key], key
        assert ln["served_model"] == sc["lane"]["served_model"] and ln["fingerprint"] == sc["lane"]["fingerprint"]
        assert ln["suite"]["sha256"] == sc["suite"]["sha256"]
    cores = {ln["lane"]: ln["core_pass"] for ln in hist_run["lanes"]}
    assert cores["alpha"] - cores["beta"] == 2  # beta answers two core prompts wrong

    # the sqlite3 fast path (SQLite at head) and the SQLAlchemy path read the same
    from hbench.plugins.history import fastread, query

    real_connect = fastread.connect
    try:
        fastread.connect = lambda url=None: None
        via_sqlalchemy = query.history(db_url)
        cmp_slow = query.resolve("beta@latest", db_url).scorecards
    finally:
        fastread.connect = real_connect
    assert via_sqlalchemy == json.loads(text)
    assert cmp_slow == query.resolve("beta@latest", db_url).scorecards == {"beta": cards["beta"]}

    # a database rebuilt from the files equals the one written live; importing twice adds nothing
    live = dump(db_url)
    assert len(live["attempts"]) == 16 and len(live["lane_runs"]) == 2 and len(live["runs"]) == 1
    for _ in range(2):
        code, text = cli("history", "--db", other_db, "import", str(out))
        assert code == 0 and "2 lanes" in text, text
        assert dump(other_db) == live
    code, _ = cli("history", "import", str(out))  # into the live one too: still the same
    assert code == 0 and dump(db_url) == live


def test_import_scores_again_a_run_whose_scorecards_a_later_run_replaced(scripted_server, tmp_path, db_url,
                                                                          other_db) -> None:
    """Two runs into one folder: the second rotates the journal and replaces the scorecards.
    Import stores the second from its scorecards and the first scored again from its
    rotated journal: the same figures as the first run's live row, marked incomplete."""
    srv_a, srv_b = scripted_server(good_scripts()), scripted_server(worse_scripts())
    cfg = two_lane_config(tmp_path, srv_a, srv_b)
    out = tmp_path / "results"
    first = run_lanes(cfg, out)
    srv_b.set_scripts(good_scripts())
    second = run_lanes(cfg, out)
    assert len(list(out.glob("journal.*.jsonl"))) == 1
    code, text = cli("history", "--db", other_db, "import", str(out))
    assert code == 0 and "scored again from the journal: alpha, beta" in text, text
    live = {r["run_id"]: r for r in json.loads(cli("history", "--json")[1])}
    rebuilt = {r["run_id"]: r for r in json.loads(cli("history", "--json", "--db", other_db)[1])}
    rid1, rid2 = (r.scorecards[0].provenance["run_id"] for r in (first, second))
    assert set(live) == set(rebuilt) == {rid1, rid2}
    assert rebuilt[rid2] == live[rid2]  # from the scorecards: identical
    for a, b in zip(live[rid1]["lanes"], rebuilt[rid1]["lanes"]):
        for key in ("lane", "core_pass", "core_n", "pass_rate", "pass_rate_ci95", "consistency", "runaway_rate",
                    "served_model", "fingerprint", "suite"):
            assert a[key] == b[key], key
        assert b["complete"] is False and "rebuilt from journal." in b["incomplete_reason"]
    again = dump(other_db)
    assert cli("history", "--db", other_db, "import", str(out))[0] == 0 and dump(other_db) == again


def test_tokens_and_show(scripted_server, tmp_path, db_url) -> None:
    srv = scripted_server(good_scripts())
    out = tmp_path / "r"
    result = run(RunOptions(lane_url=srv.url, model="scripted-model", suite="hermes-brain-v1", out=str(out), runs=2,
                            core_only=True, report="json", progress=False))
    sc = result.scorecards[0]
    rid = sc.provenance["run_id"]
    code, text = cli("history", "show", rid[:8], "--json")
    assert code == 0
    shown = json.loads(text)
    (lane,) = shown["lanes"]
    journal_tokens = [json.loads(line)["attempt"] for line in (out / "journal.jsonl").read_text().splitlines()
                      if line.startswith('{"type":"attempt"')]
    assert lane["attempts"]["n"] == 16 == len(journal_tokens)
    assert lane["attempts"]["prompt_tokens"] == sum(a["prompt_tokens"] for a in journal_tokens) > 0
    assert lane["attempts"]["completion_tokens"] == sum(a["completion_tokens"] for a in journal_tokens) > 0
    assert {p["id"]: p["passes"] for p in lane["prompts"] if not p["skipped"]} == \
        {p.id: p.passes for p in sc.prompts if not p.skipped}
    code, text = cli("history", "show", rid)
    assert code == 0 and f"core {sc.core_pass}/8" in text and "PASS" in text
    code, _ = cli("history", "show", "nosuchrun")
    assert code == 2


def test_no_history_and_filters_and_prune(scripted_server, tmp_path, db_url, monkeypatch) -> None:
    from hbench.plugins.history import db
    from hbench.plugins.history.store import write_lane

    srv = scripted_server(good_scripts())
    base = ["run", "--lane-url", srv.url, "--model", "scripted-model", "--suite", "hermes-brain-v1", "--runs", "1",
            "--core-only", "--report", "json", "--no-progress"]
    code, _ = cli(*base, "--out", str(tmp_path / "off"), "--no-history")
    assert code == 0
    assert cli("history", "--json") == (0, "[]\n")  # nothing written (and nothing created just to read)
    monkeypatch.delenv("HBENCH_HISTORY")  # on by default
    assert cli(*base, "--out", str(tmp_path / "on"))[0] == 0
    # two older runs of the same lane (the same scorecard, other run ids and times)
    sc = json.loads((tmp_path / "on" / "scripted-model.json").read_text())
    for i, when in enumerate(("2026-01-02T10:00:00+0000", "2026-01-01T10:00:00+0100")):
        old = json.loads(json.dumps(sc))
        old["provenance"].update(run_id=f"older{i}", run_started_at=when, started_at=when, finished_at=when)
        write_lane(db.engine_for(db_url), old)
    runs = json.loads(cli("history", "--json")[1])
    assert [r["run_id"] for r in runs][1:] == ["older0", "older1"]  # newest first
    assert runs[0]["run_id"] == sc["provenance"]["run_id"]
    suite = runs[0]["lanes"][0]["suite"]
    assert len(json.loads(cli("history", "--json", "--lane", "scripted-model", "--suite", suite["name"])[1])) == 3
    assert len(json.loads(cli("history", "--json", "--suite", suite["sha256"][:10])[1])) == 3
    assert json.loads(cli("history", "--json", "--suite", "other-suite")[1]) == []
    assert json.loads(cli("history", "--json", "--lane", "nope")[1]) == []
    assert json.loads(cli("history", "--json", "--model", "other-model")[1]) == []
    assert len(json.loads(cli("history", "--json", "--model", "scripted-model")[1])) == 3
    assert [r["run_id"] for r in json.loads(cli("history", "--json", "--since", "1d")[1])] == [runs[0]["run_id"]]
    assert len(json.loads(cli("history", "--json", "--since", "2026-01-01T09:30")[1])) == 2  # 10:00+0100 is 09:00Z
    assert json.loads(cli("history", "--json", "--since", "2999-01-01")[1]) == []
    assert cli("history", "--since", "yesterday")[0] == 2
    code, text = cli("history")
    assert code == 0 and text.count("scripted-model") >= 3 and "older0" in text
    code, text = cli("history", "prune", "--keep", "1")
    assert code == 0 and "deleted 2 runs" in text
    kept = json.loads(cli("history", "--json")[1])
    assert [r["run_id"] for r in kept] == [runs[0]["run_id"]]
    rows = dump(db_url)
    assert len(rows["lanes"]) == 1 and len(rows["lane_runs"]) == 1 and len(rows["attempts"]) == 8


def test_the_live_writer_on_an_existing_sqlite_file_does_not_import_sqlalchemy(tmp_path) -> None:
    """The run pays no SQLAlchemy import (BENCHMARKS.md 11): sqlite3 writes the same rows."""
    card_file = tmp_path / "lane.json"
    data = json.loads((ROOT / "tests" / "data" / "scorecards" / "llamacpp-qwen3-8b.json").read_text())
    data["provenance"]["run_id"] = "r1"
    card_file.write_text(json.dumps(data))
    dbfile = tmp_path / "h.sqlite"
    env = {**os.environ, "HBENCH_DB": str(dbfile), "HBENCH_HISTORY": "1"}
    code = ("import json, sys; from hbench.report import scorecard_from_dict\n"
            "from hbench.plugins.history.live import writer\n"
            "writer.write(scorecard_from_dict(json.load(open(sys.argv[1]))))\n"
            "print('sqlalchemy' in sys.modules)\n")
    first = subprocess.run([sys.executable, "-c", code, str(card_file)], env=env, capture_output=True, text=True)
    assert first.stdout.strip() == "True", first.stderr  # a new file: created (and stamped) through SQLAlchemy
    data["provenance"]["run_id"] = "r2"
    card_file.write_text(json.dumps(data))
    second = subprocess.run([sys.executable, "-c", code, str(card_file)], env=env, capture_output=True, text=True)
    assert second.stdout.strip() == "False", second.stderr
    rows = dump(f"sqlite:///{dbfile}")
    n_attempts = sum(len(p["attempts"]) for p in data["prompts"])
    assert sorted(dict(r)["run_id"] for r in rows["runs"]) == ["'r1'", "'r2'"]
    assert len(rows["attempts"]) == 2 * n_attempts > 0 and len(rows["prompts"]) == 2 * len(data["prompts"])
    # the same rows as SQLAlchemy writes them
    from hbench.plugins.history import db
    from hbench.plugins.history.store import write_lane

    other = tmp_path / "sa.sqlite"
    from hbench.report import scorecard_from_dict, scorecard_to_dict

    for rid in ("r1", "r2"):  # as the writer passes it: the scorecard structured, then unstructured
        sc = scorecard_to_dict(scorecard_from_dict({**data, "provenance": {**data["provenance"], "run_id": rid}}))
        write_lane(db.engine_for(str(other)), sc)
    assert dump(f"sqlite:///{other}") == rows
    db.dispose_all()


def test_no_history_is_kept_in_the_resume_command(monkeypatch) -> None:
    import hbench.runner

    seen = {}

    def fake_run(opts, plugins=None):  # noqa: ANN001, ANN202
        seen["argv"] = opts.argv
        raise KeyboardInterrupt  # the CLI prints the resume command and exits 130

    monkeypatch.setattr(hbench.runner, "run", fake_run)
    with pytest.raises(SystemExit):
        from hbench.cli import main

        main(["run", "--lane-url", "http://127.0.0.1:9/v1", "--model", "m", "--no-history"])
    assert "--no-history" in seen["argv"]


def test_no_key_and_no_url_credentials_in_the_database(scripted_server, tmp_path, db_url, monkeypatch) -> None:
    key = "sk-hbench-test-" + uuid.uuid4().hex
    monkeypatch.setenv("HBENCH_T_KEY", key)
    srv = scripted_server(good_scripts())
    host = srv.url.split("://", 1)[1]
    url = f"http://joe:pw-{key[-12:]}@{host}"
    cfg = tmp_path / "hbench.toml"
    cfg.write_text(f'[lanes.secret]\nkind = "openai"\nbase_url = "{url}"\nmodel = "scripted-model"\n'
                   'api_key_env = "HBENCH_T_KEY"\n')
    result = run(RunOptions(config=str(cfg), lanes="secret", suite="hermes-brain-v1", out=str(tmp_path / "o"), runs=1,
                            core_only=True, report="json", progress=False))
    assert not result.scorecards[0].failed
    rows = dump(db_url)
    text = json.dumps(rows)
    assert rows["lane_runs"] and key not in text and key[-12:] not in text and "joe:" not in text
    (lane,) = rows["lanes"]
    assert dict(lane)["base_url"] == repr(f"http://{host}")


def test_concurrent_runs_write_one_sqlite_file(scripted_server, tmp_path, monkeypatch) -> None:
    """Two hbench processes at once, one SQLite file: both runs land (no "database is locked")."""
    dbfile = tmp_path / "shared.sqlite"
    srv = scripted_server(good_scripts())
    env = {**os.environ, "HBENCH_DB": str(dbfile), "HBENCH_HISTORY": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "hbench", "run", "--lane-url", srv.url, "--model", "scripted-model",
                               "--suite", "hermes-brain-v1", "--runs", "2", "--core-only", "--report", "json",
                               "--no-progress", "--out", str(tmp_path / f"out{i}")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        assert "history.not_written" not in err, err
    monkeypatch.setenv("HBENCH_DB", str(dbfile))
    runs = json.loads(cli("history", "--json")[1])
    assert len(runs) == 2 and runs[0]["lanes"][0]["core_pass"] == runs[1]["lanes"][0]["core_pass"] > 0
    assert len(dump(f"sqlite:///{dbfile}")["attempts"]) == 32


# --------------------------------------------------------------------------- compare


def card(lane: str, verdicts: dict[str, bool], core: set[str] | None = None, **kw: Any) -> dict[str, Any]:
    core = set(verdicts) if core is None else core
    n_core = [p for p in verdicts if p in core]
    passed = [p for p in n_core if verdicts[p]]
    return {"schema": "hbench.scorecard/1", "lane": {"name": lane, "served_model": "m", "fingerprint": "f"},
            "suite": {"name": "s", "version": "1", "sha256": "x"}, "core_pass": len(passed), "core_n": len(n_core),
            "pass_rate": len(passed) / max(1, len(n_core)), "pass_rate_ci95": [0.1, 0.9],
            "prompts": [{"id": p, "core": p in core, "runs": 3, "majority_pass": v, "skipped": None}
                        for p, v in verdicts.items()], **kw}


def test_mcnemar_exact_known_values() -> None:
    from hbench.plugins.history.compare import mcnemar_exact

    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 64)  # 0.03125: significant at 0.05
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)  # 0.0625: not
    assert mcnemar_exact(1, 1) == 1.0
    assert mcnemar_exact(8, 1) == pytest.approx(2 * (1 + 9) / 512)  # 0.0390625


@given(st.integers(0, 40), st.integers(0, 40))
def test_mcnemar_exact_properties(b: int, c: int) -> None:
    from itertools import product

    from hbench.plugins.history.compare import mcnemar_exact

    p = mcnemar_exact(b, c)
    assert 0.0 < p <= 1.0 and p == mcnemar_exact(c, b)
    if b + c <= 12:  # the definition, by enumeration: outcomes at least as extreme as observed
        n = b + c
        extreme = sum(1 for flips in product((0, 1), repeat=n)
                      if abs(sum(flips) - n / 2) >= abs(b - n / 2))
        assert p == pytest.approx(min(1.0, extreme / 2 ** n))


def test_compare_crafted_flips_and_verdicts() -> None:
    from hbench.plugins.history.compare import compare, to_text

    ids = [f"p{i}" for i in range(10)]
    a = {"x": card("x", {p: True for p in ids}, core={"p0", "p1"}),
         "y": card("y", {p: i >= 6 for i, p in enumerate(ids)}, core=set()),
         "z": card("z", {p: True for p in ids}, core=set()),
         "gone": card("gone", {"p0": True})}
    b = {"x": card("x", {p: p != "p0" for p in ids}, core={"p0", "p1"}),  # one core prompt lost
         "y": card("y", {p: True for p in ids}, core=set()),  # 6 fixed: better, not a regression
         "z": card("z", {p: i >= 6 for i, p in enumerate(ids)}, core=set()),  # 6 broke: significant
         "new": card("new", {"p0": True})}
    cmp = compare("A", a, "B", b)
    d = {x.lane: x for x in cmp.lanes}
    assert d["x"].worse == ["p0"] and d["x"].lost_core == ["p0"] and d["x"].regression
    assert d["x"].p_value == 1.0 and not d["x"].significant  # one flip is no evidence; losing core is the reason
    assert d["y"].better == ids[:6] and not d["y"].worse and d["y"].significant and not d["y"].regression
    assert d["z"].worse == ids[:6] and d["z"].p_value == pytest.approx(0.03125) and d["z"].regression
    assert d["z"].lost_core == [] and "significantly worse" in d["z"].reasons[0]
    assert cmp.only_a == ["gone"] and cmp.only_b == ["new"] and cmp.regression
    text = to_text(cmp)
    assert "x: REGRESSION" in text and "lost core prompt p0" in text and "y: better" in text
    # a prompt skipped on one side is not paired
    b2 = {"x": card("x", {p: True for p in ids})}
    b2["x"]["prompts"][0]["skipped"] = "not core (--core-only)"
    assert compare("A", {"x": a["x"]}, "B", b2).lanes[0].paired == 9


def _write_cards(folder: Path, cards: dict[str, dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, c in cards.items():
        (folder / f"{name}.json").write_text(json.dumps(c))
    return folder


def test_compare_folders_fail_on_regression_exit_codes(tmp_path) -> None:
    ids = [f"p{i}" for i in range(8)]
    old = _write_cards(tmp_path / "old", {"x": card("x", {p: True for p in ids})})
    same = _write_cards(tmp_path / "same", {"x": card("x", {p: True for p in ids})})
    worse = _write_cards(tmp_path / "worse", {"x": card("x", {p: p != "p3" for p in ids})})
    assert cli("compare", str(old), str(same), "--fail-on-regression")[0] == 0
    code, text = cli("compare", str(old), str(worse))
    assert code == 0 and "REGRESSION" in text  # without the flag: reported, exit 0
    code, text = cli("compare", str(old), str(worse), "--fail-on-regression")
    assert code == 4 and "p3" in text
    code, text = cli("compare", str(old), str(worse), "--json")
    data = json.loads(text)
    assert data["regression"] and data["lanes"][0]["worse"] == ["p3"] and data["test"].startswith("McNemar exact")
    code, _ = cli("compare", str(tmp_path / "missing"), str(old))
    assert code == 2


def test_done_when_second_run_worse_compare_exits_4(scripted_server, tmp_path, db_url) -> None:
    """Two runs of the same lanes; the second with lane beta made worse on the scripted
    server: `hbench compare beta@-1 beta@latest --fail-on-regression` exits 4 naming the
    flipped prompts; alpha, unchanged, passes the gate."""
    srv_a, srv_b = scripted_server(good_scripts()), scripted_server(good_scripts())
    cfg = two_lane_config(tmp_path, srv_a, srv_b)
    first = run_lanes(cfg, tmp_path / "run1")
    srv_b.set_scripts(worse_scripts())
    second = run_lanes(cfg, tmp_path / "run2")
    code, text = cli("compare", "beta@-1", "beta@latest", "--fail-on-regression")
    assert code == 4, text
    assert "ground-freight-account" in text and "compute-march-expenses" in text and "REGRESSION" in text
    c1 = first.scorecards[1].core_pass
    assert f"core_pass  {c1}/8 -> {c1 - 2}/8" in text
    code, text = cli("compare", "alpha@-1", "alpha@latest", "--fail-on-regression")
    assert code == 0 and "no regression" in text
    # whole runs by id (and prefix), and the HTML page
    rid1, rid2 = (r.scorecards[0].provenance["run_id"] for r in (first, second))
    code, text = cli("compare", rid1[:10], rid2, "--json", "--html", str(tmp_path / "cmp.html"),
                     "--fail-on-regression")
    data = json.loads(text)
    assert code == 4 and {d["lane"]: d["regression"] for d in data["lanes"]} == {"alpha": False, "beta": True}
    page = (tmp_path / "cmp.html").read_text()
    assert "compute-march-expenses" in page and "REGRESSION" in page and "<script" not in page
    assert cli("compare", "beta@-2", "beta@latest")[0] == 2  # only two runs


def test_report_html_trend_only_with_history(scripted_server, tmp_path, db_url) -> None:
    srv_a, srv_b = scripted_server(good_scripts()), scripted_server(good_scripts())
    cfg = two_lane_config(tmp_path, srv_a, srv_b)
    o = dict(config=str(cfg), lanes="alpha,beta", suite="hermes-brain-v1", runs=1, core_only=True, progress=False)
    run(RunOptions(out=str(tmp_path / "r1"), **o))
    page1 = (tmp_path / "r1" / "report.html").read_text()
    assert 'id="trends"' not in page1  # first seen: no empty chart
    srv_b.set_scripts(worse_scripts())
    run(RunOptions(out=str(tmp_path / "r2"), **o))
    page2 = (tmp_path / "r2" / "report.html").read_text()
    assert 'id="trends"' in page2 and page2.count('<svg class="trend"') == 4
    assert "beta: core_pass over 2 runs" in page2 and "/8 → " in page2
