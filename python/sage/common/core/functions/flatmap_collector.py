"""Collector: what FlatMapFunction.collect emits through."""

from __future__ import annotations

from typing import Any


class Collector:
    """Emits records of the current call of a flatmap (``self.out.collect(x)`` is ``self.collect(x)``)."""

    def __init__(self, ctx: Any = None, **kwargs: Any) -> None:
        self._ctx = ctx
        self.logger = kwargs.get("logger")

    def collect(self, data: Any) -> None:
        """Emit ``data`` downstream now."""
        if self._ctx is None:
            raise RuntimeError("Collector not initialized: collect() works only while the job runs")
        self._ctx._emit(data)
