"""BaseEnvironment: one job: its sources, its operators, its services, and running it."""

from __future__ import annotations

import atexit
import copy
import inspect
import itertools
import json
import logging
import re
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sage import _sage
from sage.common.core.functions import (
    BaseCoMapFunction,
    BaseFunction,
    BaseJoinFunction,
    Collector,
    FlatMapFunction,
)
from sage.common.core.functions.lambda_function import (
    LambdaFilterFunction,
    LambdaFlatMapFunction,
    LambdaKeyByFunction,
    LambdaMapFunction,
    LambdaSinkFunction,
    LambdaSourceFunction,
)
from sage.common.core.signals import StopSignal
from sage.kernel.api import runtime
from sage.kernel.api.datastream import DataStream
from sage.kernel.api.errors import JobFailedError, PlanError, SageError
from sage.kernel.api.service import _ServiceHost

_sage._init(StopSignal, runtime.RuntimeContext, runtime.format_failure)

log = logging.getLogger("sage")

# Config keys the engine reads (anything else is refused by it, naming the key), and SAGE Kernel keys that mean
# nothing here (Ray's cluster, the execution mode): those are ignored with a warning.
_ENGINE_KEYS = {
    "max_parallelism",
    "batch_bytes",
    "channel_bytes",
    "max_record_bytes",
    "flush_linger_us",
    "node",
    "jobmanager",
    "token_file",
    "fault_tolerance",
}
_IGNORED_KEYS = {"ray", "execution_mode", "engine_host", "engine_port", "platform", "scheduler", "log_level"}

_KINDS = {
    "map": _sage.K_MAP,
    "flatmap": _sage.K_FLATMAP,
    "filter": _sage.K_FILTER,
    "sink": _sage.K_SINK,
}
_LAMBDAS: dict[str, type] = {
    "map": LambdaMapFunction,
    "flatmap": LambdaFlatMapFunction,
    "filter": LambdaFilterFunction,
    "sink": LambdaSinkFunction,
    "source": LambdaSourceFunction,
    "keyby": LambdaKeyByFunction,
}

# How often wait() comes back to Python while it waits (Ctrl-C, signals): every 100 ms.
_WAIT_SLICE_MS = 100


@dataclass
class Transformation:
    """One declared operator, as ``env.pipeline`` lists them (SAGE Kernel's transformation fields)."""

    basename: str
    kind: str
    function_class: type
    parallelism: int
    resources: dict | None = None
    upstreams: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.basename


def _takes_context(fn: Callable[..., Any]) -> bool:
    """An open(ctx) hook: a callable taking exactly one positional argument."""
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):
        return False
    return len(params) == 1


def _bind(obj: Any, ctx: runtime.RuntimeContext) -> Any:
    """Make obj the function of one instance: its ctx, its collector, its open(ctx) hook."""
    try:
        obj.ctx = ctx
    except AttributeError:
        pass
    if isinstance(obj, FlatMapFunction):
        obj.out = Collector(ctx)
    op = getattr(obj, "open", None)
    if callable(op) and _takes_context(op):
        op(ctx)
    return obj


def _is_function_object(obj: Any) -> bool:
    return not isinstance(obj, type) and (
        isinstance(obj, BaseFunction) or hasattr(obj, "execute") or hasattr(obj, "map0")
    )


class BaseEnvironment:
    """A job: declare sources on it, transformations on their streams, services; then ``submit`` (or
    ``execute``). The engine checks every declaration at once and raises with its message (a misspelled resource
    key, a parallelism out of range, a duplicate name); after such an error the environment cannot run."""

    def __init__(
        self,
        name: str,
        config: dict | None = None,
        *,
        remote: bool = False,
        host: str | None = None,
        port: int = 0,
        platform: str = "local",
    ) -> None:
        self.name = name
        self.config: dict = dict(config or {})
        self.platform = platform
        self.pipeline: list[Transformation] = []
        self.service_factories: dict[str, _ServiceHost] = {}
        self._names: set[str] = set()
        self._protos: set[int] = set()
        self._job_id: str | int | None = None
        self._state = "created"
        engine_config = {}
        for k, v in self.config.items():
            if k in _IGNORED_KEYS:
                log.warning("config key %r is SAGE Kernel's (Ray or execution mode) and means nothing here: ignored", k)
            else:
                engine_config[k] = v
        text = json.dumps(engine_config) if engine_config else None
        self._engine = _sage.Engine(name, text, remote, host, port)
        _live.add(self)

    # ------------------------------------------------------------------ sources
    def from_batch(
        self,
        source: Any,
        *args: Any,
        name: str | None = None,
        parallelism: int | None = None,
        resources: dict | None = None,
        **kwargs: Any,
    ) -> DataStream:
        """A bounded source: a BatchFunction class (``execute()`` returns records, then None), or any iterable
        (a list, tuple, range, generator, ...: one record per item). With parallelism p, instance i of an iterable
        source emits items i, i+p, i+2p, ..."""
        if isinstance(source, type) and issubclass(source, BaseFunction) or _is_function_object(source):
            return self._source("batch", source, args, kwargs, name, parallelism, resources)
        if isinstance(source, type):
            raise TypeError(f"from_batch takes a BatchFunction class or an iterable, not the class {source.__name__}")
        try:
            iter(source)
        except TypeError:
            raise TypeError(
                f"Unsupported source type: {type(source).__name__}; expected a BatchFunction class or an iterable"
            ) from None
        if args or kwargs:
            raise TypeError("from_batch(iterable) takes no extra arguments (they go to a BatchFunction class)")
        return self._iter_source(source, name, parallelism, resources)

    def from_collection(
        self,
        function: Any,
        *args: Any,
        name: str | None = None,
        parallelism: int | None = None,
        resources: dict | None = None,
        **kwargs: Any,
    ) -> DataStream:
        """A bounded source from a BatchFunction class built with ``*args, **kwargs``
        (``env.from_collection(NumberListSource, [1, 2, 3])``); an iterable works too (as ``from_batch``)."""
        if isinstance(function, type) or _is_function_object(function):
            return self._source("batch", function, args, kwargs, name, parallelism, resources)
        if callable(function):
            return self._source("batch", function, args, kwargs, name, parallelism, resources)
        return self.from_batch(function, *args, name=name, parallelism=parallelism, resources=resources, **kwargs)

    def from_source(
        self,
        function: Any,
        *args: Any,
        name: str | None = None,
        parallelism: int | None = None,
        resources: dict | None = None,
        **kwargs: Any,
    ) -> DataStream:
        """A source from a SourceFunction class (or object, or callable): ``execute()`` returns the next record,
        None when it has nothing right now, ``StopSignal(msg)`` to end. It runs until it returns a StopSignal or the
        job is stopped."""
        return self._source("stream", function, args, kwargs, name, parallelism, resources)

    def from_future(self, name: str | None = None) -> DataStream:
        """A stream fed later, from further down the pipeline: close the loop with
        ``stream.fill_future(future)``. Records go round as long as the loop's functions send them back; the
        loop ends exactly when its inputs ended and no record is left inside it (docs/api.md, feedback loops)."""
        name = self._name_for(name, None, "future")
        sid = self._engine.future(name)
        return DataStream(self, sid, self._record(name, "future", type(None), 1, None, []), hint=None)

    def from_kafka_source(self, *args: Any, **kwargs: Any) -> DataStream:
        """Not part of this engine: write a SourceFunction that reads Kafka and use ``from_source``."""
        raise NotImplementedError("from_kafka_source is not available: use from_source with a SourceFunction")

    # ------------------------------------------------------------------ services
    def register_service(self, service_name: str, service_class: Any, *args: Any, resources: dict | None = None,
                         **kwargs: Any) -> _ServiceHost:
        """Register a service: one instance per job, ``service_class(*args, **kwargs)``, built when the job starts
        (under a JobManager in a worker process of its own, placed with ``resources`` like an operator instance,
        e.g. ``{"num_gpus": 1}`` for a model), its hooks run (``setup``, ``start``; ``stop``, ``cleanup`` at the
        end), and every operator instance calls its methods with ``self.call_service(service_name, ...)``.
        Requests and replies are pickled. The keyword ``resources`` is SAGE's, not passed to the class."""
        host = _ServiceHost(service_name, service_class, args, kwargs)
        self._engine.register_service(service_name, host, self._resources(resources))
        self.service_factories[service_name] = host
        return host

    # ------------------------------------------------------------------ running
    def submit(self, autostop: bool = False) -> str | int:
        """Start the job. Returns its id: a uuid string for a local job, the JobManager's job number for a remote
        one. With ``autostop=True`` it returns once the job has ended (every source ended and every record was
        processed), raising :class:`JobFailedError` if it failed. Errors before anything runs (an infeasible
        resources request, a service whose start failed) raise here.

        In a worker process of a RemoteEnvironment's job this runs the worker's task and ends the process: it never
        returns there."""
        try:
            self._engine.submit()
        except SageError as e:
            self._state = "failed"
            errs = list(self._engine.service_errors)
            if errs:
                raise type(e)(str(e)) from errs[0]
            raise
        self._state = "running"
        self._job_id = self._new_job_id()
        if autostop:
            self.wait()
        return self._job_id

    def execute(self) -> str | int:
        """``submit(autostop=True)``: run the job to its end."""
        return self.submit(autostop=True)

    def wait(self, timeout: float | None = None) -> str | None:
        """Wait for the submitted job to end: its final state ("finished", "stopped", "canceled"), or None when
        ``timeout`` seconds passed first. A failed job raises :class:`JobFailedError` with the engine's message
        (operator, instance, records processed, the Python traceback); in a local job the original exception is
        its ``__cause__``. Ctrl-C cancels the job and raises KeyboardInterrupt."""
        if self._state == "created":
            raise SageError("nothing was submitted: call submit() first")
        deadline = None
        if timeout is not None:
            deadline = _now() + max(0.0, float(timeout))
        try:
            while True:
                ms = _WAIT_SLICE_MS
                if deadline is not None:
                    left = deadline - _now()
                    if left <= 0:
                        rc = self._engine.wait(0)
                        if rc is None:
                            return None
                        break
                    ms = max(1, min(ms, int(left * 1000)))
                rc = self._engine.wait(ms)
                if rc is not None:
                    break
        except KeyboardInterrupt:
            self._engine.cancel()
            while self._engine.wait(_WAIT_SLICE_MS) is None:
                pass
            self._state = self._engine.state()
            raise
        return self._settle(rc)

    def stop(self) -> str:
        """Stop gracefully: sources end, the records in flight drain through the pipeline, close() hooks run. Waits
        for the end and returns the final state (raises JobFailedError if the job failed meanwhile)."""
        if self._state == "created":
            log.warning("Environment not submitted, nothing to stop")
            return "created"
        self._engine.stop()
        return self.wait() or self._state

    def cancel(self) -> str:
        """Cancel now: records in flight are dropped. Waits for the end; returns the final state."""
        if self._state == "created":
            return "created"
        self._engine.cancel()
        try:
            return self.wait() or self._state
        except JobFailedError:
            return self._state

    def close(self) -> None:
        """Stop a running job (gracefully) and release the engine. A failure is logged, not raised (wait, stop and
        submit(autostop=True) raise it). The environment cannot be used after."""
        if self._engine is None:
            return
        try:
            if self._state == "running" and not self._engine.remote:
                self.stop()
        except JobFailedError as e:
            log.error("job %r failed: %s", self.name, e)
        finally:
            self._engine.close()
            _live.discard(self)

    @property
    def state(self) -> str:
        """created, running, finished, stopped, failed or canceled (closed once the environment was closed)."""
        return self._engine.state()

    @property
    def job_id(self) -> str | int | None:
        return self._job_id

    # ------------------------------------------------------------------ introspection
    def explain(self, as_json: bool = False) -> str | dict:
        """The compiled plan: operators, chains (operators fused into one thread), routing, each instance's
        resources. Compiling freezes the pipeline: declare everything first."""
        text = self._engine.explain(as_json)
        return json.loads(text) if as_json else text

    def operators(self) -> list[tuple[str, int]]:
        """(name, parallelism) of every operator, in declaration order."""
        return self._engine.operators()

    def metric(self, operator: str, name: str = "records_in", instance: int | None = None) -> dict | None:
        """A metric of an operator (all instances together unless ``instance``): ``records_in``, ``records_out``,
        or one a function recorded with ``self.ctx.get_metrics()``. A dict (``{"kind": "counter", "value": n}`` or
        a histogram's count, sum, min, max, p50, p90, p99, p999), None when there is none. User metrics are
        readable once the job ended."""
        return self._engine.metric(operator, -1 if instance is None else int(instance), name)

    def metrics_table(self) -> list[dict]:
        """records_in and records_out of every operator instance (the parallelism summary)."""
        rows = []
        for op, par in self.operators():
            for i in range(par):
                rin = self.metric(op, "records_in", i) or {"value": 0}
                rout = self.metric(op, "records_out", i) or {"value": 0}
                rows.append({"operator": op, "instance": i, "records_in": rin["value"], "records_out": rout["value"]})
        return rows

    def set_console_log_level(self, level: str) -> None:
        """The level of the ``sage`` logger (DEBUG, INFO, WARNING, ERROR)."""
        valid = ["DEBUG", "INFO", "WARNING", "ERROR"]
        if level.upper() not in valid:
            raise ValueError(f"Invalid log level: {level}. Must be one of {valid}")
        log.setLevel(level.upper())

    # ------------------------------------------------------------------ internals
    def _new_job_id(self) -> str | int:
        return uuid.uuid4().hex

    def _settle(self, rc: int) -> str:
        state = self._engine.state()
        self._state = state
        if state != "failed" and rc == 0:
            return state
        if state == "canceled":
            return state
        code, msg = self._engine.error()
        exc = JobFailedError(msg or f"job {self.name!r} failed ({rc})")
        exc.code = code or rc
        exc.code_name = _sage.strerror(exc.code)[0]
        cause = None
        for m in re.finditer(r'operator "(.+?)" instance (\d+)', msg or ""):
            cause = self._engine.failures.get(f"{m.group(1)}\n{m.group(2)}")
            if cause is not None:
                break
        raise exc from cause

    def _unique(self, base: str) -> str:
        name, n = base, 0
        while name in self._names:
            n += 1
            name = f"{base}_{n}"
        return name

    def _name_for(self, name: str | None, function: Any, kind: str) -> str:
        if name is not None:
            self._names.add(name)
            return name
        if isinstance(function, type):
            base = function.__name__
        elif _is_function_object(function):
            base = type(function).__name__
        else:
            base = getattr(function, "__name__", "") or kind
            if base == "<lambda>" or not base.isprintable():
                base = kind
        base = base.replace("/", "_")
        name = self._unique(base)
        self._names.add(name)
        return name

    @staticmethod
    def _resources(resources: dict | None) -> str | None:
        if resources is None:
            return None
        if not isinstance(resources, dict):
            raise TypeError(f"resources must be a dict such as {{'num_cpus': 4, 'memory': '8GB'}}, not {resources!r}")
        return json.dumps(resources) if resources else None

    @staticmethod
    def _parallelism(parallelism: int | None, hint: int | None = None) -> int:
        p = parallelism if parallelism is not None else hint if hint is not None else 1
        if isinstance(p, bool) or not isinstance(p, int):
            raise TypeError(f"parallelism must be an int, not {p!r}")
        if p < 1:
            raise PlanError(f"parallelism {p}: it must be at least 1")
        return p

    def _factory(self, kind: str, function: Any, args: tuple, kwargs: dict) -> tuple[Callable[[Any], Any], type]:
        """callable(ctx) -> the function object of one instance, and the class it is of."""
        if isinstance(function, type):
            cls = function

            def make_cls(ctx: runtime.RuntimeContext) -> Any:
                return _bind(cls(*args, **kwargs), ctx)

            return make_cls, cls
        if _is_function_object(function):
            if args or kwargs:
                raise TypeError(
                    f"extra arguments go to the constructor of a function class; {type(function).__name__} was "
                    "given as an object"
                )
            proto = function
            shared = id(proto) in self._protos
            self._protos.add(id(proto))

            def make_obj(ctx: runtime.RuntimeContext) -> Any:
                obj = proto if ctx.parallel_index == 0 and not shared else copy.deepcopy(proto)
                return _bind(obj, ctx)

            return make_obj, type(proto)
        if callable(function):
            wrapper = _LAMBDAS[kind]

            def make_fn(ctx: runtime.RuntimeContext) -> Any:
                return _bind(wrapper(function), ctx)

            return make_fn, wrapper
        raise TypeError(f"expected a function class, a function object or a callable, not {function!r}")

    def _record(self, name: str, kind: str, fclass: type, parallelism: int, resources: dict | None,
                inputs: Iterable[DataStream]) -> Transformation:
        t = Transformation(name, kind, fclass, parallelism, resources or None,
                           [s.transformation.basename for s in inputs if s.transformation])
        self.pipeline.append(t)
        return t

    def _source(self, kind: str, function: Any, args: tuple, kwargs: dict, name: str | None,
                parallelism: int | None, resources: dict | None) -> DataStream:
        fkind = "source"
        factory, fclass = self._factory(fkind, function, args, kwargs)
        name = self._name_for(name, function, "source")
        p = self._parallelism(parallelism)
        code = _sage.K_SOURCE_STREAM if kind == "stream" else _sage.K_SOURCE_BATCH
        sid = self._engine.source(code, factory, name, p, self._resources(resources))
        return DataStream(self, sid, self._record(name, "source", fclass, p, resources, []))

    def _iter_source(self, source: Any, name: str | None, parallelism: int | None,
                     resources: dict | None) -> DataStream:
        p = self._parallelism(parallelism)
        data = source
        if p > 1 and not isinstance(source, (list, tuple, range, str, bytes)):
            data = list(source)  # every instance takes its share of the same items

        def make_iter(ctx: runtime.RuntimeContext) -> Any:
            if ctx.parallelism == 1:
                return iter(data)
            return itertools.islice(data, ctx.parallel_index, None, ctx.parallelism)

        name = self._name_for(name, None, "source")
        sid = self._engine.source(_sage.K_SOURCE_ITER, make_iter, name, p, self._resources(resources))
        return DataStream(self, sid, self._record(name, "source", type(source), p, resources, []))

    def _operator(self, kind: str, stream: DataStream, function: Any, args: tuple, kwargs: dict,
                  name: str | None, parallelism: int | None, resources: dict | None) -> DataStream:
        self._check_stream(stream)
        factory, fclass = self._factory(kind, function, args, kwargs)
        name = self._name_for(name, function, kind)
        p = self._parallelism(parallelism, stream._hint)
        self._engine.consumed(stream._sid, p)
        sid = self._engine.op(_KINDS[kind], stream._sid, factory, name, p, self._resources(resources))
        return DataStream(self, sid, self._record(name, kind, fclass, p, resources, [stream]))

    def _check_stream(self, stream: DataStream) -> None:
        if stream._environment is not self:
            raise ValueError("this stream belongs to another environment")

    def _key_callable(self, function: Any, args: tuple, kwargs: dict) -> tuple[Callable[[Any], Any], str]:
        if isinstance(function, type):
            obj = function(*args, **kwargs)
            fn = getattr(obj, "execute", None) or obj
            return fn, function.__name__
        if args or kwargs:
            raise TypeError("extra arguments go to the constructor of a key function class")
        if hasattr(function, "execute"):
            return function.execute, type(function).__name__
        if callable(function):
            return function, getattr(function, "__name__", "key")
        raise TypeError(f"a key function is a KeyByFunction class or object, or a callable, not {function!r}")

    def _keyby(self, stream: DataStream, function: Any, strategy: str, args: tuple, kwargs: dict,
               parallelism: int | None) -> DataStream:
        self._check_stream(stream)
        hint = parallelism if parallelism is not None else stream._hint
        if strategy == "hash":
            fn, fname = self._key_callable(function, args, kwargs)
            sid = self._engine.key_by(stream._sid, fn, f"the key function {fname} (keyby)")
            return DataStream(self, sid, stream.transformation, key=fn, base=stream, hint=hint)
        if strategy == "broadcast":
            return DataStream(self, self._engine.route(stream._sid, "broadcast"), stream.transformation, hint=hint)
        if strategy in ("round_robin", "rebalance"):
            return DataStream(self, self._engine.route(stream._sid, "rebalance"), stream.transformation, hint=hint)
        raise ValueError(f"keyby strategy {strategy!r}: expected 'hash', 'broadcast' or 'round_robin'")

    def _partition(self, stream: DataStream, partitioner: Any, parallelism: int | None) -> DataStream:
        self._check_stream(stream)
        obj = partitioner() if isinstance(partitioner, type) else partitioner
        fn = getattr(obj, "partition", None) or obj
        if not callable(fn):
            raise TypeError(f"a partitioner has partition(record, num_partitions), not {partitioner!r}")
        fname = type(obj).__name__ if hasattr(obj, "partition") else getattr(fn, "__name__", "partitioner")
        sid = self._engine.partition(stream._sid, fn, f"the partitioner {fname} (partition_custom)")
        hint = parallelism if parallelism is not None else stream._hint
        return DataStream(self, sid, stream.transformation, hint=hint)

    def _union(self, streams: list[DataStream], name: str | None) -> DataStream:
        if len(streams) < 2:
            raise ValueError("union needs at least one other stream")
        for s in streams:
            self._check_stream(s)
        name = self._name_for(name, None, "union")
        sid = self._engine.union([s._sid for s in streams], name)
        return DataStream(self, sid, self._record(name, "union", type(None), 1, None, streams), hint=None)

    def _route(self, stream: DataStream, how: str) -> DataStream:
        self._check_stream(stream)
        return DataStream(self, self._engine.route(stream._sid, how), stream.transformation, hint=stream._hint)

    def _comap(self, connected: Any, function: Any, args: tuple, kwargs: dict, name: str | None,
               parallelism: int | None, resources: dict | None, same_for_all: bool = False) -> DataStream:
        streams = connected.streams
        n = len(streams)
        if n > _sage.MAX_INPUTS:
            raise ValueError(f"a comap takes at most {_sage.MAX_INPUTS} inputs, not {n}")
        for s in streams:
            self._check_stream(s)
        if same_for_all:
            base_factory, fclass = self._factory("map", function, args, kwargs)

            def make_same(ctx: runtime.RuntimeContext) -> Any:
                return _SameForAll(base_factory(ctx), n)

            factory = make_same
            kind_name = "map"
        elif isinstance(function, (list, tuple)):
            fns = list(function)
            if len(fns) != n or not all(callable(f) for f in fns):
                raise ValueError(f"comap with callables needs one per input: {n} callables, got {len(fns)}")

            def make_list(ctx: runtime.RuntimeContext) -> Any:
                return _bind(_CallablesCoMap(fns), ctx)

            factory, fclass, kind_name = make_list, _CallablesCoMap, "comap"
        else:
            if callable(function) and not isinstance(function, type) and not _is_function_object(function):
                raise NotImplementedError(
                    "comap takes a BaseCoMapFunction class (map0..mapN) or a list of callables, one per input"
                )
            cls = function if isinstance(function, type) else type(function)
            missing = [f"map{i}" for i in range(n) if not callable(getattr(cls, f"map{i}", None))]
            if missing:
                raise TypeError(f"CoMap function {cls.__name__} is missing required methods: {missing}")
            if isinstance(function, type) and not issubclass(function, BaseCoMapFunction):
                log.debug("comap with %s, which is not a BaseCoMapFunction", function.__name__)
            factory, fclass = self._factory("map", function, args, kwargs)
            kind_name = "comap"
        name = self._name_for(name, function if not isinstance(function, (list, tuple)) else None, kind_name)
        sid = streams[0]._sid
        for s in streams[1:]:
            sid = self._engine.connect(sid, s._sid)
        p = self._parallelism(parallelism)
        for s in streams:
            self._engine.consumed(s._sid, p)
        out = self._engine.comap(sid, n, factory, name, p, self._resources(resources))
        return DataStream(self, out, self._record(name, "comap", fclass, p, resources, streams))

    def _join(self, connected: Any, function: Any, args: tuple, kwargs: dict, name: str | None,
              parallelism: int | None, resources: dict | None) -> DataStream:
        streams = connected.streams
        if len(streams) != 2:
            raise ValueError(f"Join requires exactly 2 input streams, got {len(streams)}")
        left, right = streams
        for s in (left, right):
            self._check_stream(s)
            if s._key is None:
                raise ValueError(
                    "join needs two hash-keyed streams: left.keyby(f).connect(right.keyby(g)).join(JoinFunction)"
                )
        cls = function if isinstance(function, type) else type(function)
        if not (isinstance(cls, type) and issubclass(cls, BaseJoinFunction)) and not hasattr(cls, "execute"):
            raise TypeError("Join function must inherit from BaseJoinFunction")
        factory, fclass = self._factory("map", function, args, kwargs)
        name = self._name_for(name, function, "join")
        p = self._parallelism(parallelism)
        sid = self._engine.join(left._base._sid, left._key, right._base._sid, right._key, factory, name, p,
                                self._resources(resources))
        return DataStream(self, sid, self._record(name, "join", fclass, p, resources, streams))

    def __enter__(self) -> BaseEnvironment:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self._state}>"


class _CallablesCoMap(BaseCoMapFunction):
    """comap([f0, f1, ...]): input i goes to f_i."""

    def __init__(self, fns: list[Callable[[Any], Any]]) -> None:
        super().__init__()
        for i, f in enumerate(fns):
            setattr(self, f"map{i}", f)

    def map0(self, data: Any) -> Any:  # replaced per instance
        raise NotImplementedError

    def map1(self, data: Any) -> Any:  # replaced per instance
        raise NotImplementedError


class _SameForAll:
    """ConnectedStreams.map: every input handled by one function object's execute."""

    def __init__(self, fn: Any, n: int) -> None:
        self.fn = fn
        for i in range(n):
            setattr(self, f"map{i}", fn.execute)
        close = getattr(fn, "close", None)
        if callable(close):
            self.close = close


def _now() -> float:
    import time

    return time.monotonic()


# Environments alive in this process: at exit a local job still running is stopped (its records in flight drain)
# and every engine is released before the interpreter shuts down (engine threads must not outlive it).
_live: "weakref.WeakSet[BaseEnvironment]" = weakref.WeakSet()
_exit_lock = threading.Lock()


@atexit.register
def _close_all() -> None:
    with _exit_lock:
        for env in list(_live):
            try:
                if env._state == "running" and not env._engine.remote:
                    log.warning("job %r still running at interpreter exit: stopping it", env.name)
                env.close()
            except Exception as e:  # noqa: BLE001 - exit must go on
                log.error("closing environment %r at exit: %s", env.name, e)
