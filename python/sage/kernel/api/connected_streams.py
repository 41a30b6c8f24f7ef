"""ConnectedStreams: several streams as the inputs of one comap or join."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sage.common.core.functions import BaseFunction
    from sage.kernel.api.base_environment import BaseEnvironment
    from sage.kernel.api.datastream import DataStream


class ConnectedStreams:
    """Streams connected in order: input 0, 1, ... of the operator declared on them. ``comap`` handles each input
    with its own method (``map0``, ``map1``, ...) and runs until every input has ended; ``join`` pairs two keyed
    streams."""

    def __init__(self, env: BaseEnvironment, streams: list[DataStream]) -> None:
        if len(streams) < 2:
            raise ValueError("ConnectedStreams requires at least 2 streams")
        for s in streams:
            if s._environment is not env:
                raise ValueError("all connected streams must belong to the same environment")
        self._environment = env
        self.streams = list(streams)

    @property
    def transformations(self) -> list[Any]:
        return [s.transformation for s in self.streams]

    def connect(self, other: DataStream | ConnectedStreams) -> ConnectedStreams:
        """Add ``other``'s streams as the next inputs."""
        more = other.streams if isinstance(other, ConnectedStreams) else [other]
        return ConnectedStreams(self._environment, self.streams + list(more))

    def keyby(self, key_selector: Any, strategy: str = "hash") -> ConnectedStreams:
        """Key every input: one key function for all, or a list with one per input."""
        if isinstance(key_selector, list):
            if len(key_selector) != len(self.streams):
                raise ValueError(
                    f"Key selector count ({len(key_selector)}) must match stream count ({len(self.streams)})"
                )
            keyed = [s.keyby(k, strategy=strategy) for s, k in zip(self.streams, key_selector)]
        else:
            keyed = [s.keyby(key_selector, strategy=strategy) for s in self.streams]
        return ConnectedStreams(self._environment, keyed)

    key_by = keyby

    def comap(
        self,
        function: type[BaseFunction] | list[Callable[[Any], Any]] | Callable[[Any], Any],
        *args: Any,
        name: str | None = None,
        parallelism: int | None = None,
        resources: dict | None = None,
        **kwargs: Any,
    ) -> DataStream:
        """Declare one operator whose ``mapN(data)`` handles the records of input N (a BaseCoMapFunction class, or a
        list of callables, one per input); a result that is not None is emitted."""
        return self._environment._comap(self, function, args, kwargs, name, parallelism, resources)

    def join(
        self,
        function: type[BaseFunction],
        *args: Any,
        name: str | None = None,
        parallelism: int | None = None,
        resources: dict | None = None,
        **kwargs: Any,
    ) -> DataStream:
        """A keyed join of exactly two hash-keyed streams: ``execute(payload, key, tag)`` (tag 0: left, 1: right)
        returns the records to emit."""
        return self._environment._join(self, function, args, kwargs, name, parallelism, resources)

    def map(
        self,
        function: Any,
        *args: Any,
        name: str | None = None,
        parallelism: int | None = None,
        resources: dict | None = None,
        **kwargs: Any,
    ) -> DataStream:
        """The same function for every input (a union of the streams, then a map)."""
        return self._environment._comap(
            self, function, args, kwargs, name, parallelism, resources, same_for_all=True
        )

    def sink(self, function: Any, *args: Any, name: str | None = None, parallelism: int | None = None,
             resources: dict | None = None, **kwargs: Any) -> DataStream:
        """Every input's records into one sink (through a union)."""
        return self.map(lambda x: x, name=None).sink(
            function, *args, name=name, parallelism=parallelism, resources=resources, **kwargs
        )

    def print(self, prefix: str = "", separator: str = " | ", colored: bool = True) -> DataStream:
        """Every input's records on stdout."""
        return self.map(lambda x: x).print(prefix, separator, colored)
