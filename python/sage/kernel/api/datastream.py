"""DataStream: the output of one operator, and what can be declared on it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sage.common.core.functions.flatmap_function import FlatMapFunction

if TYPE_CHECKING:
    from sage.common.core.functions import BaseFunction
    from sage.kernel.api.base_environment import BaseEnvironment, Transformation
    from sage.kernel.api.connected_streams import ConnectedStreams
    from sage.kernel.api.partitioner import Partitioner

T = TypeVar("T")

FunctionLike = Any  # a function class, a function object, or a plain callable
_NO_INITIAL = object()  # reduce without an initial value: a key's first record starts its accumulator


class DataStream(Generic[T]):
    """The records one operator emits. Every method declares a new operator right away (errors raise here, naming
    what is wrong) and returns the stream of its output.

    Transformations take a function class (built once per parallel instance with the extra positional and keyword
    arguments), a function object (instance 0 uses it, the others a deep copy), or a plain callable; and the
    keywords ``name`` (default: the class name, made unique), ``parallelism`` (default 1) and ``resources`` (what
    each instance needs: ``num_cpus``, ``num_gpus``, ``memory`` such as ``"8GB"``, ``object_store_memory``,
    ``resources`` for custom ones).
    """

    def __init__(
        self,
        env: BaseEnvironment,
        sid: int,
        transformation: Transformation | None,
        *,
        key: Callable[[Any], Any] | None = None,
        base: DataStream | None = None,
        hint: int | None = None,
    ) -> None:
        self._environment = env
        self._sid = sid
        self.transformation = transformation
        self._key = key  # set on a hash-keyed view: the key function (for join)
        self._base = base  # the stream before keyby
        self._hint = hint  # a parallelism for the next operator (keyby/partition_custom parallelism=)

    # ---- transformations ----
    def map(
        self,
        function: type[BaseFunction] | FunctionLike,
        *args: Any,
        name: str | None = None,
        parallelism: int | None = None,
        resources: dict | None = None,
        **kwargs: Any,
    ) -> DataStream:
        """One output per input (``execute(data)``; None means no output)."""
        return self._environment._operator("map", self, function, args, kwargs, name, parallelism, resources)

    def filter(
        self,
        function: type[BaseFunction] | FunctionLike,
        *args: Any,
        name: str | None = None,
        parallelism: int | None = None,
        resources: dict | None = None,
        **kwargs: Any,
    ) -> DataStream:
        """Keep the records for which ``execute(data)`` is true."""
        return self._environment._operator("filter", self, function, args, kwargs, name, parallelism, resources)

    def flatmap(
        self,
        function: type[BaseFunction] | FunctionLike,
        *args: Any,
        name: str | None = None,
        parallelism: int | None = None,
        resources: dict | None = None,
        **kwargs: Any,
    ) -> DataStream:
        """Any number of outputs per input: ``execute(data)`` returns an iterable and/or calls ``self.collect(x)``."""
        return self._environment._operator("flatmap", self, function, args, kwargs, name, parallelism, resources)

    flat_map = flatmap

    def sink(
        self,
        function: type[BaseFunction] | FunctionLike,
        *args: Any,
        name: str | None = None,
        parallelism: int | None = None,
        resources: dict | None = None,
        **kwargs: Any,
    ) -> DataStream:
        """Consume the records (``execute(data)``, then ``close()`` at the end). Returns this stream (a sink has no
        output), as SAGE Kernel does."""
        self._environment._operator("sink", self, function, args, kwargs, name, parallelism, resources)
        return self

    def print(self, prefix: str = "", separator: str = " | ", colored: bool = True) -> DataStream:
        """A sink printing every record on stdout, one line each (``prefix + separator + record``)."""
        from sage.common.components.debug.print_sink import PrintSink

        return self.sink(PrintSink, prefix=prefix, separator=separator, colored=colored)

    # ---- routing ----
    def keyby(
        self,
        function: type[BaseFunction] | FunctionLike,
        strategy: str = "hash",
        *args: Any,
        parallelism: int | None = None,
        **kwargs: Any,
    ) -> DataStream:
        """Route by key: ``strategy="hash"`` sends records with equal keys to the same instance of the next operator
        (in every run and every process: the key's canonical bytes are hashed, not Python's ``hash()``), which can
        read the key with ``self.ctx.get_key()``. ``"broadcast"`` sends every record to every instance,
        ``"round_robin"`` spreads them evenly (the key function is not called for those two). ``parallelism``, when
        given, is the next operator's parallelism unless that one sets its own."""
        return self._environment._keyby(self, function, strategy, args, kwargs, parallelism)

    key_by = keyby

    def partition_custom(self, partitioner: Partitioner | Any, parallelism: int | None = None) -> DataStream:
        """Route by ``partitioner.partition(record, num_partitions)`` (a Partitioner object or class, or a callable
        ``(record, num_partitions) -> int``). ``parallelism``, when given, is the next operator's parallelism unless
        that one sets its own."""
        return self._environment._partition(self, partitioner, parallelism)

    def rebalance(self) -> DataStream:
        """Round-robin to the next operator's instances."""
        return self._environment._route(self, "rebalance")

    def broadcast(self) -> DataStream:
        """Every record to every instance of the next operator."""
        return self._environment._route(self, "broadcast")

    def forward(self) -> DataStream:
        """Instance i to instance i (needs equal parallelism; the default then)."""
        return self._environment._route(self, "forward")

    def reduce(
        self,
        function: Any,
        *args: Any,
        emit: str = "each",
        initial: Any = _NO_INITIAL,
        name: str | None = None,
        parallelism: int | None = None,
        resources: dict | None = None,
        **kwargs: Any,
    ) -> DataStream:
        """Keyed reduce, on a ``keyby(..., "hash")`` stream: one running value per key, folded by
        ``function(acc, value) -> acc`` (a callable, an object with ``execute(acc, value)``, or such a class, built
        with ``*args, **kwargs``); the first value of a key starts it, or ``function(initial, value)`` when
        ``initial`` is given. Emits ``(key, acc)``: after every record (``emit="each"``), or once per key when the
        input ended (``emit="close"``: word count is ``words.keyby(str).reduce(lambda n, _: n + 1, initial=0,
        emit="close")``)."""
        if self._key is None:
            raise ValueError("reduce needs a keyed stream: call keyby(key_function) first")
        if emit not in ("each", "close"):
            raise ValueError(f"reduce: emit={emit!r}, expected 'each' or 'close'")
        if isinstance(function, type):
            obj = function(*args, **kwargs)
            fold = getattr(obj, "execute", None) or obj
        elif args or kwargs:
            raise TypeError("extra arguments go to the constructor of a reduce function class")
        else:
            fold = getattr(function, "execute", None) or function
        if not callable(fold):
            raise TypeError(f"a reduce function is a callable (acc, value) -> acc, not {function!r}")
        return self._environment._operator(
            "flatmap", self, _KeyedReduce, (fold, emit == "each", initial), {},
            name if name is not None else "reduce", parallelism, resources)

    def union(self, *others: DataStream, name: str | None = None) -> DataStream:
        """The records of this stream and of ``others``, unchanged, as one stream (their order across inputs is not
        defined)."""
        return self._environment._union([self, *others], name)

    # ---- several inputs ----
    def connect(self, other: DataStream | ConnectedStreams) -> ConnectedStreams:
        """This stream and ``other`` as the inputs 0, 1, ... of a ``comap`` or ``join``."""
        from sage.kernel.api.connected_streams import ConnectedStreams

        if isinstance(other, DataStream):
            return ConnectedStreams(self._environment, [self, other])
        return ConnectedStreams(self._environment, [self, *other.streams])

    # ---- feedback loops ----
    def fill_future(self, future_stream: DataStream) -> None:
        """Send this stream's records back into ``future_stream`` (from ``env.from_future``): a feedback loop."""
        self._environment._check_stream(self)
        self._environment._check_stream(future_stream)
        self._environment._engine.fill_future(self._sid, future_stream._sid)

    def __repr__(self) -> str:
        t = self.transformation
        return f"<DataStream of {t.basename if t else '?'}>"


class _KeyedReduce(FlatMapFunction):
    """DataStream.reduce: one running value per key (in this instance: keyby sends equal keys here)."""

    def __init__(self, fold: Any, each: bool, initial: Any) -> None:
        super().__init__()
        self._fold = fold
        self._each = each
        self._initial = initial
        self._acc: dict = {}

    def execute(self, data: Any) -> Any:
        key = self.ctx.get_key()
        if key in self._acc:
            acc = self._fold(self._acc[key], data)
        elif self._initial is _NO_INITIAL:
            acc = data
        else:
            acc = self._fold(copy.deepcopy(self._initial), data)
        self._acc[key] = acc
        return [(key, acc)] if self._each else None

    def close(self) -> None:
        if not self._each:
            for key, acc in self._acc.items():
                self.collect((key, acc))
