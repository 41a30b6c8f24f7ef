"""LocalEnvironment: the job runs in this process, one thread per operator instance."""

from __future__ import annotations

from typing import Any

from sage.kernel.api.base_environment import BaseEnvironment, log


class LocalEnvironment(BaseEnvironment):
    """A job that runs inside this process: every operator instance (or chain of fused instances) is a thread of
    the engine, and records are passed between them as object references, never copied or pickled.

    Python code runs under the GIL: instances run concurrently, but only one executes Python at a time, so
    ``parallelism`` speeds up work that releases the GIL (I/O, service calls, numpy, model inference), not pure
    Python computation. For that, use a RemoteEnvironment: the JobManager runs every instance in its own process.

    ``config`` is the engine's (``{"node": {"cpus": 20, "gpus": 2, "memory": "64GB"}}``, ``{"fault_tolerance":
    {...}}``, ``batch_bytes``, ...; see docs/python.md); SAGE Kernel's Ray keys are ignored with a warning.
    """

    def __init__(
        self,
        name: str = "localenvironment",
        config: dict | None = None,
        scheduler: Any = None,
        enable_monitoring: bool = False,
    ) -> None:
        if config and "jobmanager" in config:
            raise ValueError("LocalEnvironment runs in this process: for a JobManager use "
                             "RemoteEnvironment(name, config, host=..., port=...)")
        if scheduler is not None:
            log.warning("LocalEnvironment(scheduler=...): SAGE places operators itself; the scheduler is ignored")
        super().__init__(name, config, remote=False, platform="local")
        self.enable_monitoring = enable_monitoring
