"""SinkFunction: consumes records."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from sage.common.core.functions.base_function import BaseFunction


class SinkFunction(BaseFunction):
    """``execute(data)`` consumes one record; its result is ignored. An optional ``close()`` runs once per instance at
    the end of the stream (after the last record), also when the job failed or was stopped."""

    @abstractmethod
    def execute(self, data: Any) -> None:
        """Consume ``data``."""
