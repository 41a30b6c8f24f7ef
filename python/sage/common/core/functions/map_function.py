"""MapFunction: one output per input."""

from __future__ import annotations

from typing import Any

from sage.common.core.functions.base_function import BaseFunction


class MapFunction(BaseFunction):
    """One output per input: ``execute(data)`` returns the new record. Returning None emits nothing (as in SAGE
    Kernel). A subclass may define ``map(data)`` instead of ``execute``."""

    def execute(self, data: Any) -> Any:
        if type(self).map is MapFunction.map:
            raise NotImplementedError(f"{type(self).__name__} defines neither execute(data) nor map(data)")
        return self.map(data)

    def map(self, data: Any) -> Any:
        """The mapping, for subclasses that prefer this name to ``execute``."""
        raise NotImplementedError
