"""SourceFunction: produces records until it returns StopSignal."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from sage.common.core.functions.base_function import BaseFunction


class SourceFunction(BaseFunction):
    """``execute()`` returns the next record; ``StopSignal(msg)`` ends this source instance; ``None`` means nothing
    right now (the engine calls again, backing off up to 1 ms while it keeps returning None). Used by
    ``env.from_source``; the engine never sleeps between records."""

    @abstractmethod
    def execute(self, data: Any = None) -> Any:
        """The next record, None (nothing now) or a StopSignal (the end)."""
