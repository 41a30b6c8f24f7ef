"""FlatMapFunction: any number of outputs per input."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from typing import Any

from sage.common.core.functions.base_function import BaseFunction
from sage.common.core.functions.flatmap_collector import Collector


class FlatMapFunction(BaseFunction):
    """``execute(data)`` emits any number of records: it returns an iterable (each item is emitted) and/or calls
    ``self.collect(x)`` for each record; None emits nothing more. ``close()``, if defined, runs after the last record
    and may emit the same ways (per-instance aggregates)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.out: Collector | None = None

    def insert_collector(self, collector: Collector) -> None:
        """Set the collector (the engine does it)."""
        self.out = collector

    def collect(self, data: Any) -> None:
        """Emit ``data`` downstream now (inside ``execute`` or ``close``)."""
        ctx = getattr(self, "ctx", None)
        if ctx is None:
            raise RuntimeError("Collector not initialized: collect() works only while the job runs")
        ctx._emit(data)

    @abstractmethod
    def execute(self, data: Any) -> Iterable[Any] | None:
        """The records ``data`` becomes (or None, after collect())."""
