"""Control signals: StopSignal ends a source."""

from __future__ import annotations

import time
from typing import Any


class StopSignal:
    """Returned by a source's ``execute()`` to end that source instance.

    The engine turns it into end-of-stream: downstream operators see every record the source emitted, then end in
    turn (sinks call their ``close()``). A StopSignal is never passed to a user function as a record.
    """

    def __init__(self, message: str = "Stop", source: str | None = None, payload: Any = None) -> None:
        self.message = message
        self.name = message
        self.source = source if source is not None else message
        self.payload = payload
        self.timestamp = time.time_ns()

    def __str__(self) -> str:
        return f"StopSignal({self.message})"

    def __repr__(self) -> str:
        return f"StopSignal(message={self.message!r}, source={self.source!r})"
