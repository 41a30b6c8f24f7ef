"""PrintSink: every record on stdout, one line each (DataStream.print)."""

from __future__ import annotations

import sys
from typing import Any

from sage.common.core.functions.sink_function import SinkFunction


class PrintSink(SinkFunction):
    """Prints every record as one line, ``prefix + separator + record`` (just the record without a prefix).

    Lines from parallel instances never mix: each is written whole. ``colored`` colours the prefix when stdout is a
    terminal. (SAGE Kernel's PrintSink printed only the first record and logged the rest; this one prints all.)
    """

    def __init__(self, prefix: str = "", separator: str = " | ", colored: bool = True, quiet: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix
        self.separator = separator
        self.colored = colored
        self.quiet = quiet

    @staticmethod
    def _format(data: Any) -> str:
        if isinstance(data, str):
            return data
        if isinstance(data, dict):
            return ", ".join(f"{k}={v}" for k, v in data.items())
        return str(data)

    def execute(self, data: Any) -> None:
        text = self._format(data)
        if self.prefix:
            prefix = self.prefix
            if self.colored and sys.stdout.isatty():
                prefix = f"\x1b[36m{prefix}\x1b[0m"
            text = f"{prefix}{self.separator}{text}"
        sys.stdout.write(text + "\n")
