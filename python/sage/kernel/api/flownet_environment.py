"""FlownetEnvironment: SAGE Kernel's later name for its distributed environment; here a RemoteEnvironment."""

from __future__ import annotations

from typing import Any

from sage.kernel.api.remote_environment import RemoteEnvironment


class FlownetEnvironment(RemoteEnvironment):
    """SAGE Kernel's Flownet-based distributed environment, as a RemoteEnvironment: the job runs on the SAGE
    JobManager at ``host:port`` (default 127.0.0.1:19001), one worker process per operator instance."""

    def __init__(self, name: str = "flownet_environment", config: dict | None = None, host: str = "127.0.0.1",
                 port: int = 19001, **kwargs: Any) -> None:
        super().__init__(name, config, host=host, port=port, **kwargs)
