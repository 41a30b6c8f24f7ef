"""FutureFunction: what a future stream (``env.from_future``) does with the records that come back into it."""

from __future__ import annotations

from typing import Any

from sage.common.core.functions.base_function import BaseFunction


class FutureFunction(BaseFunction):
    """SAGE Kernel's placeholder of a feedback edge: records filled in with ``stream.fill_future(future)`` pass
    through it unchanged. The engine runs futures itself (a task of its own per loop); this class names the kind in
    a pipeline's description."""

    def execute(self, data: Any) -> Any:
        return data
