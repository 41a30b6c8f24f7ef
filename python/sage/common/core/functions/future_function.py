"""FutureFunction: feedback loops, not available yet."""

from __future__ import annotations

from typing import Any

from sage.common.core.functions.base_function import BaseFunction


class FutureFunction(BaseFunction):
    """Placeholder of SAGE Kernel's feedback edges (``env.from_future``/``fill_future``), which this engine does not
    have yet (SAGE issue 13): using them raises NotImplementedError."""

    def execute(self, data: Any) -> Any:
        raise NotImplementedError("feedback loops (from_future/fill_future) are not available yet (SAGE issue 13)")
