"""RuntimeContext: what a running function reaches through ``self.ctx``."""

from __future__ import annotations

import logging
import pickle
import threading
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sage import _sage

__all__ = ["RuntimeContext", "Metrics", "DEFAULT_SERVICE_TIMEOUT"]

DEFAULT_SERVICE_TIMEOUT = 10.0
"""Seconds a service call waits by default (``timeout=None``)."""


class Metrics:
    """The instance's metrics, read back after the job with ``env.metric(operator, name)`` (and shown by
    ``sage job status`` for remote jobs). Histograms keep about 1% precision."""

    def __init__(self, ctx: RuntimeContext) -> None:
        self._ctx = ctx

    def record(self, name: str, value: float) -> None:
        """One observation in histogram ``name`` (any unit; seconds or nanoseconds for times)."""
        self._ctx._observe(name, float(value))

    observe = record

    def counter(self, name: str, delta: int = 1) -> None:
        """Add ``delta`` to counter ``name``."""
        self._ctx._counter(name, int(delta))

    inc = counter


class RuntimeContext(_sage.Context):
    """The runtime context of one operator instance: ``self.ctx`` inside a function.

    Attributes: ``name`` (the operator), ``env_name`` (the job), ``parallel_index``, ``parallelism``,
    ``records_in``, ``assignment`` (the resources placed for this instance: node, cpus, gpus, memory, ...),
    ``is_remote``. Methods: :meth:`get_key`, :meth:`get_metrics`, :meth:`call_service`,
    :meth:`call_service_async`, and ``logger``. Usable only on the instance's own thread while the job runs.
    """

    @property
    def logger(self) -> logging.Logger:
        """``logging.getLogger("sage.<operator>[<instance>]")``."""
        return logging.getLogger(f"sage.{self.name}[{self.parallel_index}]")

    def get_metrics(self) -> Metrics:
        """This instance's metrics: ``record(name, value)`` (histograms) and ``counter(name, delta)``."""
        return Metrics(self)

    def call_service(
        self, service_name: str, *args: Any, timeout: float | None = None, method: str | None = None, **kwargs: Any
    ) -> Any:
        """Call ``method`` (default ``"process"``) of service ``service_name`` with the arguments; wait at most
        ``timeout`` seconds (default 10) for the result. Arguments and result are pickled."""
        t = DEFAULT_SERVICE_TIMEOUT if timeout is None else float(timeout)
        m = method or "process"
        reply = self._call(service_name, _request(m, args, kwargs), t)
        return _result(service_name, m, reply)

    def call_service_async(
        self, service_name: str, *args: Any, timeout: float | None = None, method: str | None = None, **kwargs: Any
    ) -> Future:
        """Queue the call and return a ``concurrent.futures.Future`` of its result; ``timeout`` (default 10 s)
        bounds the wait for the answer."""
        t = DEFAULT_SERVICE_TIMEOUT if timeout is None else float(timeout)
        m = method or "process"
        pending = self._call_async(service_name, _request(m, args, kwargs))
        return _executor().submit(_finish, pending, service_name, m, t)


def _request(method: str, args: tuple, kwargs: dict) -> bytes:
    try:
        return pickle.dumps((method, args, kwargs), protocol=5)
    except Exception as e:
        raise TypeError(f"the arguments of the service call ({method}) cannot be pickled: {e}") from e


def _result(service: str, method: str, reply: bytes) -> Any:
    if not reply:
        return None
    status, *rest = pickle.loads(reply)
    if status == "ok":
        return rest[0]
    typename, message, tb = rest
    raise RuntimeError(f"service {service!r} method {method!r} raised {typename}: {message}\n{tb}")


def _finish(pending: Any, service: str, method: str, timeout: float) -> Any:
    return _result(service, method, pending.wait(timeout))


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """Threads that wait for asynchronous service answers (the GIL is released while they wait)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sage-service-future")
        return _pool


def format_failure(exc: BaseException, limit: int) -> str:
    """The job's failure message for an exception: its last line, then the traceback; within ``limit`` bytes of
    UTF-8, keeping the innermost frames (the engine keeps 511 bytes per failure)."""
    head = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    if exc.__traceback__ is None:  # raised by C code with no Python frame: the line says it all
        return head.encode("utf-8", "replace")[:limit].decode("utf-8", "ignore")
    body = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    text = f"{head}\n{body}"
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return text
    hb = head.encode("utf-8", "replace")[: max(0, limit // 3)]
    marker = b"\nTraceback (most recent call last, outer frames cut):\n"
    room = limit - len(hb) - len(marker)
    tail = body.encode("utf-8", "replace")
    tail = tail[len(tail) - room :] if room > 0 else b""
    nl = tail.find(b"\n")
    if 0 <= nl < len(tail) - 1:
        tail = tail[nl + 1 :]
    return (hb + marker + tail).decode("utf-8", "ignore")
