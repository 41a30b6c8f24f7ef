"""BaseService: the base class of services (optional: any class can be a service)."""

from __future__ import annotations

import logging
from abc import ABC
from typing import Any


class ServiceContext:
    """What a service reaches through ``self.ctx``: its name and a logger."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.logger = logging.getLogger(f"sage.service.{name}")

    def call_service(self, service_name: str, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a service cannot call another service in this engine (only operators can)")

    call_service_async = call_service


class BaseService(ABC):  # noqa: B024
    """A service: one object per job (per worker process under a JobManager), its methods called by operators with
    ``self.call_service(name, *args, method=...)`` (default method ``process``), one call at a time on the service's
    own thread. Hooks, each optional: ``setup()`` right after construction, ``start()`` before the first operator
    instance runs, ``stop()`` after the last one ended, then ``cleanup()``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not hasattr(self, "ctx"):
            self.ctx: ServiceContext | None = None
        self._logger: logging.Logger | None = None

    @property
    def logger(self) -> logging.Logger:
        lg = getattr(self, "_logger", None)
        if lg is None:
            ctx = getattr(self, "ctx", None)
            lg = ctx.logger if ctx is not None else logging.getLogger(type(self).__name__)
            self._logger = lg
        return lg

    @property
    def name(self) -> str:
        ctx = getattr(self, "ctx", None)
        return ctx.name if ctx is not None else type(self).__name__

    def setup(self) -> None:  # noqa: B027
        """Right after the service object is built."""

    def start(self) -> None:  # noqa: B027
        """Before the pipeline starts."""

    def stop(self) -> None:  # noqa: B027
        """After the pipeline ended."""

    def cleanup(self) -> None:  # noqa: B027
        """Last: release resources."""
