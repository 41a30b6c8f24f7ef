"""BaseFunction: the base class of every user function."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sage.kernel.api.runtime import RuntimeContext


class BaseFunction(ABC):
    """The base of all operator functions.

    The engine builds one object per parallel instance (the class with the arguments given at declaration), then sets
    ``self.ctx`` (a :class:`sage.kernel.api.runtime.RuntimeContext`), calls ``open(ctx)`` if the class defines one,
    calls ``execute`` per record, and ``close()`` (if defined) once after the last record.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ctx: RuntimeContext | None = None
        self._logger: logging.Logger | None = None

    @property
    def logger(self) -> logging.Logger:
        """A logger named after the operator and instance (``sage.<operator>[<instance>]``)."""
        lg = getattr(self, "_logger", None)
        if lg is None:
            ctx = getattr(self, "ctx", None)
            lg = ctx.logger if ctx is not None else logging.getLogger(f"sage.{type(self).__name__}")
            self._logger = lg
        return lg

    @property
    def name(self) -> str:
        """The operator's name (the class name before the job runs)."""
        ctx = getattr(self, "ctx", None)
        return ctx.name if ctx is not None else type(self).__name__

    def _ctx(self) -> RuntimeContext:
        ctx = getattr(self, "ctx", None)
        if ctx is None:
            raise RuntimeError("Runtime context not initialized: services are reachable only while the job runs")
        return ctx

    def call_service(
        self, service_name: str, *args: Any, timeout: float | None = None, method: str | None = None, **kwargs: Any
    ) -> Any:
        """Call ``method`` (default ``"process"``) of a registered service and wait for its result.

        Waits at most ``timeout`` seconds (default 10); raises ``TimeoutError`` then, and ``RuntimeError`` when the
        service raised (with its traceback) or does not exist.
        """
        return self._ctx().call_service(service_name, *args, timeout=timeout, method=method, **kwargs)

    def call_service_async(
        self, service_name: str, *args: Any, timeout: float | None = None, method: str | None = None, **kwargs: Any
    ) -> Future:
        """Queue a service call and return a ``concurrent.futures.Future`` of its result (same errors as
        :meth:`call_service`, raised by ``future.result()``)."""
        return self._ctx().call_service_async(service_name, *args, timeout=timeout, method=method, **kwargs)

    @abstractmethod
    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Process one record (see each subclass for the signature and what the result means)."""
