"""Debugging helpers: PrintSink (what DataStream.print uses)."""

from sage.common.components.debug.print_sink import PrintSink

__all__ = ["PrintSink"]
