"""FilterFunction: keep a record when execute() is true."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from sage.common.core.functions.base_function import BaseFunction


class FilterFunction(BaseFunction):
    """``execute(data)`` returns a truth value: true keeps the record (unchanged), false drops it."""

    @abstractmethod
    def execute(self, data: Any) -> bool:
        """True to keep ``data``."""
