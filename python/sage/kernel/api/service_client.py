"""Calling a running job's service from a standalone script: SAGE's "call a service from outside the pipeline"."""

from __future__ import annotations

from typing import Any

from sage import _sage
from sage.kernel.api.runtime import DEFAULT_SERVICE_TIMEOUT, _request, _result


def call_service(
    job_id: int,
    service_name: str,
    *args: Any,
    method: str | None = None,
    timeout: float | None = None,
    host: str = "127.0.0.1",
    port: int = 19001,
    token_file: str | None = None,
    **kwargs: Any,
) -> Any:
    """Call ``method`` (default ``"process"``) of service ``service_name`` of the running job ``job_id`` on the
    JobManager at ``host:port``, as an operator's ``self.call_service`` does: the job's one instance of the
    service answers. Arguments and result are pickled; wait at most ``timeout`` seconds (default 10). Raises
    ``TimeoutError``, ``RuntimeError`` (the service method raised) or ``SageError`` (no such job or service, the
    job is not running, the service's process went away: the message says which)."""
    t = DEFAULT_SERVICE_TIMEOUT if timeout is None else float(timeout)
    m = method or "process"
    reply = _sage.client_call(host, port, token_file, int(job_id), service_name, _request(m, args, kwargs),
                              int(t * 1000))
    return _result(service_name, m, reply)
