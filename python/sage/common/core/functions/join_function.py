"""BaseJoinFunction: a keyed join of two streams."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from sage.common.core.functions.base_function import BaseFunction


class BaseJoinFunction(BaseFunction):
    """``execute(payload, key, tag)`` sees every record of both keyed inputs of
    ``left.keyby(f).connect(right.keyby(g)).join(cls)``: ``tag`` 0 for the left, 1 for the right; records with equal
    keys reach the same instance. It returns the records to emit (an iterable, or None) and keeps what it must
    remember in ``self``."""

    @property
    def is_join(self) -> bool:
        return True

    @abstractmethod
    def execute(self, payload: Any, key: Any, tag: int) -> list[Any]:
        """The joined records for this input record."""
