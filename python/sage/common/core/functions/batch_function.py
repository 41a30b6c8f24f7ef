"""BatchFunction: produces records until it returns None."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from sage.common.core.functions.base_function import BaseFunction


class BatchFunction(BaseFunction):
    """``execute()`` returns the next record, or None (or a StopSignal) when the batch is over. Used by
    ``env.from_batch(cls)`` and ``env.from_collection(cls)``."""

    @abstractmethod
    def execute(self) -> Any:
        """The next record, or None at the end."""
