"""The data that flows between the parts (DESIGN.md is the contract).

attrs classes only; cattrs turns them into and out of TOML/JSON at the edges
(``config.py``, ``suite.py``, ``journal.py``, the json reporter). Field names here are
the scorecard's stable keys: rename one and you break ``hbench.scorecard/1``.
"""

from __future__ import annotations

from typing import Any

import attrs

#: the scorecard schema this hbench writes. 1.1 added ``complete``, ``attempts_planned``,
#: ``attempts_scored``, ``errored``, ``incomplete_reason`` and ``gate.status``; consistency
#: and agreement may be null (one attempt per prompt). Readers accept every 1.x.
SCORECARD_SCHEMA = "hbench.scorecard/1.1"
#: the first scorecard schema (``hbench report`` still reads it)
SCORECARD_SCHEMA_1_0 = "hbench.scorecard/1"
JOURNAL_SCHEMA = "hbench.journal/1"


# --------------------------------------------------------------------------- lanes

#: limits of a lane's throughput-sweep settings (hbench.plugins.throughput.sweep): a value outside is a typo
SWEEP_MAX_DEPTH = 1 << 20  # prompt tokens
SWEEP_MAX_CONCURRENCY = 256  # streams at once
SWEEP_MAX_POINTS = 16  # values per list
SWEEP_MAX_BUDGET_S = 3600.0


def _sweep_values(lo: int, hi: int, what: str) -> Any:
    """An attrs validator for a sweep list: None (the default), [] (off) or whole numbers in [lo, hi]."""

    def check(_inst: Any, attribute: Any, value: Any) -> None:
        if value is None:
            return
        key = attribute.name
        if not isinstance(value, list):
            raise ValueError(f"{key}: {value!r} is not a list; write {key} = [...] ([] = off)")
        bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi]
        if bad:
            raise ValueError(f"{key}: {bad[0]!r} is not usable: {what} must be whole numbers from {lo} to {hi} "
                             f"([] = off)")
        if len(value) > SWEEP_MAX_POINTS:
            raise ValueError(f"{key}: {len(value)} values; at most {SWEEP_MAX_POINTS} (each is measured)")

    return check


def _sweep_budget(_inst: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= SWEEP_MAX_BUDGET_S:
        raise ValueError(f"{attribute.name}: {value!r} is not usable: seconds from 0 (no limit) to "
                         f"{SWEEP_MAX_BUDGET_S:g}")


@attrs.define
class LaneSpec:
    """A candidate brain: a model behind an OpenAI-compatible server.

    ``api_key_env`` names the environment variable holding the key; the key itself is
    never stored in a LaneSpec, a journal or a report.
    """

    name: str
    #: the lane kind (``hbench lane-kinds``); None = the kind a plugin registered as the
    #: default (a plain OpenAI-compatible server), named when the registries are at hand
    #: (``hbench.lanes.with_kind``), so journals and scorecards always hold a name
    kind: str | None = None
    base_url: str | None = None  # ".../v1"; a managed kind may fill it in at start
    model: str | None = None  # the id sent in requests (None = ask /v1/models)
    api_key_env: str | None = None
    start: list[str] | None = None  # managed lifecycle: command run in its own process group
    env: dict[str, str] = attrs.field(factory=dict)  # extra environment for `start`
    options: dict[str, Any] = attrs.field(factory=dict)  # kind-specific options
    #: None: 600 s for a lane hbench starts, 15 s for one it does not (hbench.lanes.ready_timeout)
    ready_timeout_s: float | None = None
    expected_memory_gb: float | None = None
    stop_grace_s: float = 20.0  # SIGTERM -> SIGKILL grace for a managed lane's process group
    memory_return_timeout_s: float = 120.0  # after a stop, wait this long for memory to come back
    #: a managed lane is not started, and is stopped while it runs, when MemAvailable is
    #: below this many GiB (None = [run].memory_floor_gb, else 8 where memory is unified, else none)
    memory_floor_gb: float | None = None
    context_length: int | None = None
    temperature: float | None = None  # sampling overrides (None = the suite's default)
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    #: stream chat requests that carry tools; false for servers that cannot (llama-cpp-python's
    #: chatml-function-calling raises "Automatic streaming tool choice is not supported")
    stream_tools: bool = True
    tags: list[str] = attrs.field(factory=list)
    agent: str | None = None  # agent driver for this lane (None = the run's: --agent, else the default agent)
    agent_options: dict[str, Any] = attrs.field(factory=dict)  # e.g. {"hermes_bin": "..."}
    #: the box the lane runs on (``--parallel-lanes``: managed lanes of one node run one at a
    #: time; ``--ray``: the Ray node labelled with it). None = the box hbench runs on
    node: str | None = None
    #: the end-of-lane throughput sweeps (hbench.plugins.throughput.sweep): context depths in prompt tokens and
    #: streams at once; None = the defaults, [] = off; a point runs while its predicted time
    #: fits in ``sweep_budget_s`` (None = 20 s, 0 = no limit)
    sweep_depths: list[int] | None = attrs.field(
        default=None, validator=_sweep_values(0, SWEEP_MAX_DEPTH, "context depths (prompt tokens)"))
    sweep_concurrency: list[int] | None = attrs.field(
        default=None, validator=_sweep_values(1, SWEEP_MAX_CONCURRENCY, "streams at once"))
    sweep_budget_s: float | None = attrs.field(default=None, validator=_sweep_budget)
    #: where the spec came from ("hbench.toml", a plugin name, "--lane-url"); not user-set
    source: str = ""


# --------------------------------------------------------------------------- suites


@attrs.frozen
class CheckResult:
    """What a check says about one answer. ``why`` is one line a person can act on."""

    passed: bool
    why: str


@attrs.frozen
class SuiteDefaults:
    runs: int = 5
    timeout_s: float = 360.0
    max_turns: int = 12
    max_tokens: int = 1024
    temperature: float = 0.0


#: the agent capability a prompt needs when it sets its own tools, decoys or follow-up turns
SUITE_TOOLS = "suite_tools"


@attrs.frozen
class ArgsExpectation:
    """``expect_args`` entry: at least one call of ``tool`` carries matching ``args``
    (the matching rule is :func:`hbench.matching.args_match`)."""

    tool: str
    args: dict[str, Any]


@attrs.frozen
class FollowUp:
    """One ``turns`` entry: a user message sent after the previous final answer, and the
    check that judges the answer to it (None: only the prompt's check, on the last answer)."""

    say: str
    check: Any = None


@attrs.frozen
class Prompt:
    """One graded task. ``check`` is a configured check-kind instance (see checks)."""

    id: str
    prompt: str
    check: Any
    category: str = ""
    core: bool = True
    conditional: str | None = None  # capability name ("mcp", "rag"), or None
    expect_tool_any: tuple[str, ...] = ()
    vibe: bool = False
    note: str = ""
    line: int = 0  # line in prompts.jsonl, for error messages
    # suite format 2 (DESIGN.md, "Scenario fields")
    tools: tuple[str, ...] | None = None  # tools offered (None = the default built-in set)
    decoys: int = 0  # extra catalogue tools offered (never the right answer)
    forbid_tools: tuple[str, ...] = ()  # a call of any of these ("*" = any tool) fails the attempt
    expect_args: tuple[ArgsExpectation, ...] = ()
    turns: tuple[FollowUp, ...] = ()
    difficulty: int | None = None  # 1-3
    tags: tuple[str, ...] = ()

    @property
    def needs(self) -> tuple[str, ...]:
        """Agent capabilities this prompt needs: ``conditional``, plus ``suite_tools`` when
        it offers its own tool set, decoys or follow-up turns."""
        out = [self.conditional] if self.conditional else []
        if self.tools is not None or self.decoys or self.turns:
            out.append(SUITE_TOOLS)
        return tuple(dict.fromkeys(out))


@attrs.frozen
class ToolResponse:
    """One ``responses`` entry of a suite tool: the first whose ``when`` matches answers."""

    when: dict[str, Any] = attrs.field(factory=dict)
    result: Any = None  # JSON value; text from @fixtures/... is kept as ``text``
    text: str | None = None  # the rendered fixture file a "@fixtures/path" result named
    error: str | None = None


@attrs.frozen
class SuiteToolSpec:
    """One line of ``tools.jsonl`` (or of a decoy catalogue), placeholders resolved."""

    name: str
    description: str
    parameters: dict[str, Any]
    responses: tuple[ToolResponse, ...] = ()
    default: ToolResponse | None = None  # None: a "no match" tool error
    fail_first: int = 0  # the first N calls in each attempt return error_text
    error_text: str = "temporary error: the service did not answer; try again"
    destructive: bool = False  # the call is recorded and never acts
    decoy: bool = False  # from the decoy catalogue
    line: int = 0


@attrs.frozen
class McpServerSpec:
    """``suite.toml`` ``[mcp.servers.NAME]``: an MCP server the suite starts for every
    attempt of an MCP agent (DESIGN.md, "MCP"), with the scratch copy as its working
    directory. ``env`` holds values written in the suite only; ``tools`` (None = all)
    are the tools offered, as ``mcp__NAME__TOOL``."""

    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    env: dict[str, str] = attrs.field(factory=dict)
    tools: tuple[str, ...] | None = None
    start_timeout_s: float = 15.0
    call_timeout_s: float = 30.0


@attrs.frozen
class Suite:
    name: str
    version: str
    description: str
    system_prompt: str
    defaults: SuiteDefaults
    prompts: tuple[Prompt, ...]
    ground_truth: dict[str, str]
    path: str  # the suite folder
    fixtures_dir: str | None  # template folder (rendered per run) or None
    sha256: str  # over suite.toml + prompts + ground truth
    fixtures_sha256: str  # over the rendered fixture tree (sorted paths + bytes)
    layout: str = "hbench"  # or "hermes-brain-bench-0.1"
    tools: tuple[SuiteToolSpec, ...] = ()  # tools.jsonl
    mcp_servers: dict[str, McpServerSpec] = attrs.field(factory=dict)  # suite.toml [mcp.servers.NAME]


# --------------------------------------------------------------------------- attempts


@attrs.define
class ToolCall:
    """One tool call the agent made, as it was executed."""

    name: str
    arguments: Any  # dict when it parsed, else the raw string
    id: str = ""
    ok: bool = True
    result: str = ""  # what the model saw (capped)
    error: str | None = None  # tool error / refusal reason the model saw
    format_error: bool = False  # malformed arguments JSON


@attrs.define
class Turn:
    """One model request/response inside an attempt."""

    wall_s: float = 0.0
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    server_timings: dict[str, Any] | None = None  # llama.cpp `timings` when present


@attrs.define
class Attempt:
    """One run of one prompt on one lane: the unit the journal records."""

    lane: str
    prompt_id: str
    n: int  # 1-based attempt index within the prompt
    agent: str | None = None  # the agent that ran it (every agent sets its name; None = not recorded)
    answer: str = ""
    tool_calls: list[ToolCall] = attrs.field(factory=list)
    transcript: list[dict[str, Any]] = attrs.field(factory=list)
    turns: list[Turn] = attrs.field(factory=list)
    check: CheckResult | None = None
    tool_ok: bool = True  # expect_tool_any satisfied (or empty)
    passed: bool = False
    runaway: str | None = None  # "timeout" | "max_turns" | "loop" (+ detail)
    error: str | None = None  # transport / server / agent error after retries
    format_errors: int = 0
    unknown_tools: int = 0  # calls of tools the agent does not offer (hallucinated names)
    wall_s: float = 0.0
    started_at: str = ""
    finished_at: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: server deviations the client tolerated (another model id, no [DONE], ...), one line each
    warnings: list[str] = attrs.field(factory=list)
    check_s: float = 0.0  # seconds the check took (bounded: hbench.checks.CHECK_BUDGET_S)
    #: the final answer to each user message (the prompt, then each follow-up of ``turns``);
    #: empty for a one-message prompt, whose answer is ``answer``
    answers: list[str] = attrs.field(factory=list)


# --------------------------------------------------------------------------- scorecard


@attrs.define
class AttemptSummary:
    n: int
    passed: bool
    runaway: str | None
    error: str | None
    answer: str
    tools: list[str]
    wall_s: float
    why: str = ""
    prompt_tokens: int = 0  # summed over the attempt's model turns (the run database keeps them)
    completion_tokens: int = 0


@attrs.define
class PromptScore:
    id: str
    category: str
    core: bool
    runs: int  # attempts scored (errored attempts are not: see ``errors``)
    passes: int
    pass_rate: float
    pass_hat_k: dict[str, float]  # {"1": .., "2": .., ...} (JSON object keys are strings)
    agreement: float | None  # None with fewer than 2 scored attempts: one answer agrees with nothing
    correct_tool_rate: float
    runaway_rate: float
    format_errors: int
    errors: int  # errored attempts (an infrastructure error): in no quality figure
    majority_pass: bool
    gate: str | None = None  # e.g. "honesty" when this prompt is a gate
    skipped: str | None = None  # why it did not run (conditional, core-only)
    vibe: bool = False  # the prompt's `vibe` flag: review.md lists its answers for a person
    wall_s: dict[str, float] = attrs.field(factory=dict)  # p50/max
    attempts: list[AttemptSummary] = attrs.field(factory=list)
    difficulty: int | None = None  # the prompt's difficulty tier (1-3), when the suite gives one
    tags: list[str] = attrs.field(factory=list)


@attrs.define
class Latency:
    p50_s: float | None = None
    p95_s: float | None = None
    max_s: float | None = None


@attrs.define
class Throughput:
    tok_s: float | None = None  # median client-side decode tok/s
    ttft_ms: float | None = None
    samples: list[dict[str, Any]] = attrs.field(factory=list)
    server_tok_s: float | None = None
    disagreement: bool = False  # client vs server differ by >10%
    error: str | None = None
    #: throughput v2 (hbench.plugins.throughput.sweep, bounded at the end of every lane): {"depth": {...},
    #: "concurrency": {...}, "prefix_cache_hit_rate": x, "budget_s", "elapsed_s"}; {} = off
    sweeps: dict[str, Any] = attrs.field(factory=dict)


@attrs.define
class Telemetry:
    n_samples: int = 0
    gpu_util_mean: float | None = None
    gpu_util_max: float | None = None
    unified_used_gb_max: float | None = None
    gpu_temp_c_max: float | None = None
    power_w_max: float | None = None
    rss_gb_max: float | None = None
    cpu_percent_mean: float | None = None
    gpu_mem_used_gb_max: float | None = None  # dedicated GPU memory (discrete GPUs)
    probes: dict[str, str] = attrs.field(factory=dict)  # probe name -> "ok" | why unavailable
    series: list[dict[str, Any]] = attrs.field(factory=list)
    #: where the memory figures came from: {"source": "gpu" | "meminfo (unified memory)" |
    #: "meminfo (system RAM)" | "none", "why": one line} (hbench.probes.memory_source)
    memory_source: dict[str, str] = attrs.field(factory=dict)
    #: thermal/power clock throttling while the suite ran (hbench.probes.throttle): {"share": 0..1
    #: of the samples that read it, "reasons": {reason: share}, "source": probe, "n_samples": n};
    #: {} = unknown (no GPU probe, or the GPU cannot tell: telemetry.probes says why)
    throttle: dict[str, Any] = attrs.field(factory=dict)


@attrs.define
class Scorecard:
    """``results/<lane>.json`` (schema ``hbench.scorecard/1``)."""

    lane: dict[str, Any]  # {name, kind, model, base_url, served_model, ...}
    suite: dict[str, Any]  # {name, version, sha256, fixtures_sha256}
    runs: int
    core_pass: int
    core_n: int
    pass_rate: float
    pass_rate_ci95: list[float]
    pass_hat_k: dict[str, float]
    consistency: float | None  # None when no core prompt has 2+ scored attempts (runs = 1)
    runaway_rate: float
    correct_tool_rate: float
    format_error_rate: float
    rankable: bool
    #: {"status": "passed" | "failed" | "not evaluated", "passed": bool | None (None = not
    #: evaluated), "failed": [prompt ids], "reason": str}
    gate: dict[str, Any]
    throughput: Throughput = attrs.field(factory=Throughput)
    latency: Latency = attrs.field(factory=Latency)
    telemetry: Telemetry = attrs.field(factory=Telemetry)
    prompts: list[PromptScore] = attrs.field(factory=list)
    provenance: dict[str, Any] = attrs.field(factory=dict)
    agent: dict[str, Any] = attrs.field(factory=dict)  # {name, version}
    adaptive: bool = False
    attempts_run: int = 0
    error_rate: float = 0.0
    failed: str | None = None  # the lane failed to run (start/ready/died), with reason
    warnings: list[str] = attrs.field(factory=list)
    #: every planned attempt was scored: none errored, none missing, the lane not stopped
    #: early. An incomplete lane is never ranked; ``incomplete_reason`` says why, in one line
    complete: bool = True
    attempts_planned: int = 0
    attempts_scored: int = 0
    errored: int = 0  # attempts that ended in an infrastructure error (see scoring.is_errored)
    incomplete_reason: str | None = None
    #: per category, over the prompts that ran: {pass_rate, core_pass, core_n, n}
    categories: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    #: what a solve costs, from the suite itself (hbench.efficiency): seconds and completion
    #: tokens per solved attempt, goodput within the SLO, p50/p95 per model turn
    efficiency: dict[str, Any] = attrs.field(factory=dict)
    schema: str = SCORECARD_SCHEMA
