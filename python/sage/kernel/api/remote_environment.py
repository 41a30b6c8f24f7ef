"""RemoteEnvironment: the job runs on a SAGE JobManager, every operator instance in its own process."""

from __future__ import annotations

from typing import Any

from sage.kernel.api.base_environment import BaseEnvironment, log


class RemoteEnvironment(BaseEnvironment):
    """A job that a SAGE JobManager (``sage jobmanager start``) runs: every operator instance (or chain of fused
    instances) is a worker process, with the cores, GPUs and memory limit placed for it.

    How: the JobManager runs this program again once per worker (``python3 your_script.py args``, same directory
    and environment). In a worker the same declarations rebuild the same pipeline (a plan hash checks it: build it
    deterministically) and ``submit()`` runs that worker's task, then ends the process. Records between workers are
    encoded: int, str, bytes, float, None, and lists, tuples and dicts of those with a compact tagged form, anything
    else pickled (protocol 5); a record that cannot be pickled fails the job naming the operator. Use
    ``sage.is_worker()`` for code that belongs to the submitting process only.

    The token is read from ``config["token_file"]``, else ``$SAGE_TOKEN_FILE``, else ``$SAGE_HOME/token``
    (``~/.sage/token``).
    """

    def __init__(
        self,
        name: str = "remote_environment",
        config: dict | None = None,
        host: str = "127.0.0.1",
        port: int = 19001,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            log.warning("RemoteEnvironment: options %s mean nothing here and are ignored", sorted(kwargs))
        super().__init__(name, config, remote=True, host=host, port=port, platform="remote")
        self.host = host
        self.port = port

    def _new_job_id(self) -> int:
        return int(self._engine.job_id())
