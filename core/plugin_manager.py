"""The plugin manager and the registries it fills.

Built-ins come from :data:`BUILTIN_PLUGINS`, registered by the same manager as third-party
plugins, which come from the entry-point group ``hbench``. Each entry point loads inside
its own guard: a broken plugin is recorded (``hbench plugins`` shows it, the log says so)
and the rest load; ``strict=True`` (``--strict-plugins``) makes it fatal.

Environment:

* ``HBENCH_LOAD_PLUGINS`` - comma-separated allow-list of entry-point or distribution
  names; set but empty loads no third-party plugin.
* ``HBENCH_DISABLE_PLUGINS`` - comma-separated names never loaded.
"""

from __future__ import annotations

import importlib
import os
import traceback
from importlib import metadata
from typing import Any, Callable, Iterator

import attrs
import pluggy

from hbench import __version__, hookspecs
from hbench.errors import HBenchError, PluginError
from hbench.logging import get_logger
from hbench.models import LaneSpec

#: Built-in plugins, in registration order. Each module implements hooks with ``hookimpl``.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "hbench.plugins.commands",
    "hbench.plugins.lanes",
    "hbench.plugins.checks",
    "hbench.plugins.probes",
    "hbench.plugins.throughput",
    "hbench.plugins.reporters",
    "hbench.plugins.agents",
    "hbench.plugins.tools",
    "hbench.plugins.history",
    "hbench.plugins.mcp",
    "hbench.plugins.scaleout",
    "hbench.suites",
)

ENTRY_POINT_GROUP = "hbench"


@attrs.define
class PluginInfo:
    """One plugin as ``hbench plugins`` shows it."""

    name: str
    version: str
    builtin: bool
    status: str = "ok"  # "ok" | "error" | "disabled"
    hooks: list[str] = attrs.field(factory=list)
    error: str | None = None
    dist: str | None = None


@attrs.define
class Entry:
    name: str
    obj: Any
    plugin: str


class Registry:
    """Everything of one kind (checks, lanes, ...) that plugins registered, by name.

    A plugin may mark one entry the default (``register(obj, default=True)``): the name
    :meth:`default` answers and what ``None`` stands for in :meth:`get`, :meth:`resolve`
    and ``in`` (a ``LaneSpec`` without a ``kind`` means "the default lane kind"). Core names
    no built-in: which agent, lane kind or suite is used when none is named is the plugin's
    word."""

    def __init__(self, what: str):
        self.what = what  # singular, for messages: "check kind", "lane"
        self._entries: dict[str, Entry] = {}
        self._default: str | None = None

    def add(self, name: str, obj: Any, plugin: str, default: bool = False) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {self.what} without a name: {obj!r}")
        if name in self._entries:
            first = self._entries[name].plugin
            raise PluginError(
                f"duplicate {self.what} {name!r}: registered by plugin {first!r} and by plugin "
                f"{plugin!r}; uninstall or disable one of them (HBENCH_DISABLE_PLUGINS={plugin})"
            )
        self._entries[name] = Entry(name, obj, plugin)
        if default:
            self._mark_default(name, plugin)

    def _mark_default(self, name: str, plugin: str) -> None:
        """The first default registered wins (built-ins register first, so a third-party
        plugin cannot silently replace what a bare ``hbench run`` uses); a second one is a
        warning naming both, and the entry itself is still registered, usable by name."""
        if self._default is None:
            self._default = name
            return
        first = self._entries[self._default]
        get_logger().warning(
            "plugin.second_default", what=self.what, kept=f"{first.name} ({first.plugin})",
            ignored=f"{name} ({plugin})",
            fix=f"name it explicitly to use {name!r}; only one {self.what} can be the default")

    def default(self) -> str | None:
        """The name of the entry registered with ``default=True`` (None: no plugin marked one)."""
        return self._default

    def resolve(self, name: str | None) -> str:
        """``name``, or the default's name when ``name`` is None (LookupError when there is none)."""
        if name is not None:
            return name
        if self._default is None:
            raise LookupError(self.unknown(None))
        return self._default

    def get(self, name: str | None) -> Any:
        """The entry called ``name``; ``None`` is the default entry."""
        try:
            return self._entries[self.resolve(name)].obj
        except KeyError:
            raise LookupError(self.unknown(name)) from None

    def unknown(self, name: str | None) -> str:
        installed = ", ".join(self.names()) or "none"
        if name is None:
            return f"no {self.what} is marked default by a plugin (installed: {installed}); name one"
        return f"unknown {self.what} {name!r} (installed: {installed})"

    def plugin_of(self, name: str) -> str:
        return self._entries[name].plugin

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        if name is None:  # None names the default
            return self._default is not None
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


@attrs.define
class Registries:
    lane_kinds: Registry = attrs.field(factory=lambda: Registry("lane kind"))
    lanes: Registry = attrs.field(factory=lambda: Registry("lane"))
    checks: Registry = attrs.field(factory=lambda: Registry("check kind"))
    probes: Registry = attrs.field(factory=lambda: Registry("probe"))
    reporters: Registry = attrs.field(factory=lambda: Registry("reporter"))
    agents: Registry = attrs.field(factory=lambda: Registry("agent"))
    tools: Registry = attrs.field(factory=lambda: Registry("tool"))
    suites: Registry = attrs.field(factory=lambda: Registry("suite"))


#: registration hook name -> Registries attribute
REGISTRATION_HOOKS: dict[str, str] = {
    "hbench_register_lane_kinds": "lane_kinds",
    "hbench_register_lanes": "lanes",
    "hbench_register_checks": "checks",
    "hbench_register_probes": "probes",
    "hbench_register_reporters": "reporters",
    "hbench_register_agents": "agents",
    "hbench_register_tools": "tools",
    "hbench_register_suites": "suites",
}


def _env_list(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


#: registries that keep one instance of each entry (stateless singletons: the registry makes
#: it when a plugin registers the class)
ONE_INSTANCE = frozenset({"lane_kinds", "reporters", "agents", "tools"})
#: registries that keep the class: hbench makes an instance per use (a check per prompt, with
#: the prompt's options; a probe per run, since probes hold state)
KEEP_CLASS = frozenset({"checks", "probes"})


def _what(attr: str) -> str:
    return attr[:-1].replace("_", " ")


def _shaped(attr: str, obj: Any, plugin: str) -> Any:
    """What the registry keeps for ``register(obj)``: the one registration shape is "register
    the class" (``register(VLLMKind)``, ``register(JsonReporter)``); data is registered as
    itself (a ``LaneSpec``, a suite folder, a tool made from a catalogue line). An instance
    (the old shape of lane kinds, reporters, agents and tools) is still accepted."""
    if attr in ONE_INSTANCE and isinstance(obj, type):
        try:
            return obj()
        except Exception as exc:  # noqa: BLE001 - the plugin's constructor: its failure, named
            raise PluginError(
                f"plugin {plugin!r} registered {_what(attr)} class {obj.__name__}, which cannot be made "
                f"without arguments ({type(exc).__name__}: {exc}); give {obj.__name__}.__init__ defaults "
                f"for every argument, or register an instance: register({obj.__name__}(...))") from exc
    if attr in KEEP_CLASS and not isinstance(obj, type):
        cls = type(obj).__name__
        raise PluginError(
            f"plugin {plugin!r} registered an instance of {cls} as a {_what(attr)}; register the class "
            f"itself: register({cls}) (hbench makes one per {'prompt' if attr == 'checks' else 'run'})")
    return obj


def _validate(attr: str, name: str, obj: Any, plugin: str) -> None:
    def need(cond: bool, what: str) -> None:
        if not cond:
            raise PluginError(f"plugin {plugin!r} registered {_what(attr)} {name!r}: {what}")

    if attr == "lanes":
        need(isinstance(obj, LaneSpec), "expected an hbench.models.LaneSpec")
    elif attr == "lane_kinds":
        need(callable(getattr(obj, "ready", None)), "expected a subclass of hbench.LaneKind")
    elif attr == "checks":
        need(attrs.has(obj) and callable(getattr(obj, "check", None)), "expected an attrs class with check(answer)")
    elif attr == "probes":
        need(callable(getattr(obj, "sample", None)) and callable(getattr(obj, "available", None)),
             "expected a probe class with available() and sample()")
    elif attr == "reporters":
        need(callable(getattr(obj, "write", None)), "expected a reporter with write(scorecards, out_dir, context)")
    elif attr == "agents":
        need(callable(getattr(obj, "run_attempt", None)), "expected an agent with run_attempt(ctx)")
    elif attr == "tools":
        need(callable(getattr(obj, "call", None)), "expected a tool with call(args, sandbox)")


class HBenchPlugins:
    """The plugin manager plus what it knows about each plugin."""

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.pm = pluggy.PluginManager("hbench")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._order: dict[str, int] = {}  # plugin name -> when it was registered
        self._registries: Registries | None = None
        self._load_builtins()
        self._load_entry_points()
        self._check_pending()

    # ----------------------------------------------------------------- loading
    def _fail(self, info: PluginInfo, error: str, exc: BaseException | None = None) -> None:
        info.status, info.error = "error", error
        self.infos[info.name] = info
        get_logger().warning("plugin.broken", plugin=info.name, error=error)
        if exc is not None:
            log_traceback(info.name, "load", exc)
        if self.strict:
            raise PluginError(f"plugin {info.name!r} failed: {error} (--strict-plugins)")

    def _load_builtins(self) -> None:
        for modname in BUILTIN_PLUGINS:
            info = PluginInfo(name=modname, version=__version__, builtin=True, dist="hermes-bench")
            mod = importlib.import_module(modname)  # a broken built-in is our bug: let it raise
            self.pm.register(mod, name=modname)
            self._order[modname] = len(self._order)
            self.infos[modname] = info

    def _load_entry_points(self) -> None:
        allow = _env_list("HBENCH_LOAD_PLUGINS")
        deny = _env_list("HBENCH_DISABLE_PLUGINS") or set()
        seen: set[str] = set()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else None
            version = ep.dist.version if ep.dist else "?"
            if ep.name in seen:
                continue
            seen.add(ep.name)
            info = PluginInfo(name=ep.name, version=version, builtin=False, dist=dist)
            names = {ep.name, dist} - {None}
            if (allow is not None and not names & allow) or names & deny:
                info.status = "disabled"
                self.infos[ep.name] = info
                continue
            try:
                plugin = ep.load()
                if self.pm.is_registered(plugin):
                    continue
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:  # noqa: BLE001 - isolation is the point
                self._fail(info, f"{type(exc).__name__}: {exc}", exc)
                continue
            self._order[ep.name] = len(self._order)
            self.infos[ep.name] = info

    def _check_pending(self) -> None:
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin) or str(exc.plugin)
            self.pm.unregister(exc.plugin)
            info = self.infos.get(name) or PluginInfo(name=name, version="?", builtin=False)
            self._fail(info, f"unknown hook: {exc}")
            self._check_pending()

    # ----------------------------------------------------------------- hooks
    def hook_names(self, plugin_name: str) -> list[str]:
        plugin = self.pm.get_plugin(plugin_name)
        if plugin is None:
            return []
        return sorted(c.name for c in self.pm.get_hookcallers(plugin) or [])

    def _impls(self, hook: str, *, call_order: bool) -> list[Any]:
        """The non-wrapper implementations of ``hook``: in pluggy's call order (tryfirst
        first, trylast last, otherwise the last registered first) or, with
        ``call_order=False``, in registration order."""
        impls = [i for i in getattr(self.pm.hook, hook).get_hookimpls() if not (i.hookwrapper or i.wrapper)]
        if call_order:
            return impls[::-1]  # pluggy calls its list from the end
        return sorted(impls, key=lambda i: self._order.get(i.plugin_name, len(self._order)))

    def _one(self, hook: str, plugin_name: str) -> Callable[..., list[Any]]:
        """``hook`` called through pluggy, limited to one plugin's implementation (every
        wrapper still wraps it): pluggy's own call path, so ``hookwrapper``/``wrapper``
        implementations see the call, while a failure stays that plugin's alone."""
        others = [i.plugin for i in self._impls(hook, call_order=False)
                  if i.plugin_name != plugin_name]
        return self.pm.subset_hook_caller(hook, remove_plugins=others)

    def call_each(self, hook: str, **kwargs: Any) -> Iterator[tuple[str, Callable[[], Any]]]:
        """Yield ``(plugin_name, call)`` for each implementation of ``hook``, in pluggy's
        call order (so ``tryfirst``/``trylast`` hold); ``call()`` runs that one
        implementation through pluggy and returns its result. Calling them one by one
        isolates plugins and attributes results."""
        first = bool(getattr(self.pm.hook, hook).spec.opts.get("firstresult"))  # one value, not a list
        for impl in self._impls(hook, call_order=True):
            caller = self._one(hook, impl.plugin_name)
            yield impl.plugin_name, (lambda c=caller: c(**kwargs) if first else _only(c(**kwargs)))

    def first_result(self, hook: str, *, isolate: bool = True, **kwargs: Any) -> tuple[str | None, Any]:
        """A ``firstresult`` hook through pluggy, one plugin at a time in pluggy's call order
        (:meth:`call_each`): ``(plugin_name, answer)`` of the first plugin whose answer is not
        None, ``(None, None)`` when none answers. ``isolate``: a plugin that raises is logged
        (traceback at debug level; fatal with ``--strict-plugins``) and the next one asked;
        ``isolate=False`` lets its error through (a plugin that may have half done the job)."""
        for plugin_name, call in self.call_each(hook, **kwargs):
            try:
                answer = call()
            except Exception as exc:  # noqa: BLE001 - isolation is the point
                if not isolate and isinstance(exc, HBenchError):
                    raise  # a message for the person running hbench (bad input, a lane error)
                get_logger().warning("plugin.hook_failed", plugin=plugin_name, hook=hook,
                                     error=f"{type(exc).__name__}: {exc}")
                log_traceback(plugin_name, hook, exc)
                if not isolate:
                    raise
                if self.strict:
                    raise PluginError(f"plugin {plugin_name!r}: {hook} raised {exc}") from exc
                continue
            if answer is not None:
                return plugin_name, answer
        return None, None

    def register(self, plugin: Any, name: str | None = None) -> str:
        """Register a plugin object at run time (tests, ``hbench.testing``)."""
        name = self.pm.register(plugin, name=name) or name or repr(plugin)
        self._order[name] = len(self._order)
        self.infos[name] = PluginInfo(name=name, version="?", builtin=False)
        self.pm.check_pending()
        self._registries = None
        return name

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.infos.pop(name, None)
        self._registries = None

    @property
    def registries(self) -> Registries:
        if self._registries is None:
            self._registries = self._collect()
        return self._registries

    def _collect(self) -> Registries:
        reg = Registries()
        for hook, attr in REGISTRATION_HOOKS.items():
            registry: Registry = getattr(reg, attr)
            # registration order: the first plugin to register a name owns it
            for impl in self._impls(hook, call_order=False):
                plugin_name = impl.plugin_name

                def register(obj: Any, name: str | None = None, default: bool = False,
                             _p: str = plugin_name) -> None:
                    obj = _shaped(attr, obj, _p)
                    key = name if name is not None else getattr(obj, "name", None)
                    _validate(attr, key, obj, _p)
                    if attr == "lanes" and obj.kind is None and reg.lane_kinds.default() is not None:
                        # a lane without a kind runs on the default kind: name it, so the
                        # lane's fingerprint and scorecard say which (kinds register first)
                        obj = attrs.evolve(obj, kind=reg.lane_kinds.default())
                    registry.add(key, obj, _p, default=bool(default))

                try:
                    self._one(hook, plugin_name)(register=register)
                except PluginError as exc:
                    if self.strict or self.infos.get(plugin_name, PluginInfo("", "", True)).builtin:
                        raise
                    self._fail(self.infos[plugin_name], str(exc))
                except Exception as exc:  # noqa: BLE001
                    info = self.infos[plugin_name]
                    if info.builtin:
                        raise
                    self._fail(info, f"{hook} raised {type(exc).__name__}: {exc}", exc)
        return reg

    def broadcast(self, hook: str, **kwargs: Any) -> None:
        """Call a broadcast hook on every plugin; a failing sink is logged, never fatal."""
        for plugin_name, call in self.call_each(hook, **kwargs):
            try:
                call()
            except Exception as exc:  # noqa: BLE001
                get_logger().warning("plugin.hook_failed", plugin=plugin_name, hook=hook,
                                     error=f"{type(exc).__name__}: {exc}")
                log_traceback(plugin_name, hook, exc)
                if self.strict:
                    raise PluginError(f"plugin {plugin_name!r}: {hook} raised {exc}") from exc

    def plugin_list(self) -> list[PluginInfo]:
        out = []
        for info in self.infos.values():
            info.hooks = self.hook_names(info.name)
            out.append(info)
        return out


def _only(results: list[Any]) -> Any:
    """The one result of a hook called on one plugin (None when it returned None)."""
    return results[0] if results else None


def log_traceback(plugin: str, hook: str, exc: BaseException) -> None:
    """A plugin's failure with its whole traceback, at debug level (``-v``/``--log-level
    debug``); the warning beside it names the plugin and the error in one line."""
    get_logger().debug("plugin.traceback", plugin=plugin, hook=hook,
                       traceback="".join(traceback.format_exception(exc)).rstrip())


_current: HBenchPlugins | None = None


def get_plugins(strict: bool | None = None) -> HBenchPlugins:
    """The process-wide plugin manager (built on first use)."""
    global _current
    if _current is None or (strict is not None and strict != _current.strict):
        _current = HBenchPlugins(strict=bool(strict))
    return _current


def get_registries() -> Registries:
    return get_plugins().registries


def reset_plugins() -> None:
    """Forget the manager (tests, and after installing plugins in-process)."""
    global _current
    _current = None
