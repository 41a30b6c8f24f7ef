"""SAGE Kernel's API over the SAGE engine.

    from sage.kernel.api import LocalEnvironment, RemoteEnvironment
"""

from sage.kernel.api.base_environment import BaseEnvironment, Transformation
from sage.kernel.api.connected_streams import ConnectedStreams
from sage.kernel.api.datastream import DataStream
from sage.kernel.api.errors import (
    ConfigError,
    InfeasibleError,
    JobFailedError,
    PlanError,
    ResourceError,
    SageError,
)
from sage.kernel.api.flownet_environment import FlownetEnvironment
from sage.kernel.api.local_environment import LocalEnvironment
from sage.kernel.api.partitioner import Partitioner
from sage.kernel.api.remote_environment import RemoteEnvironment
from sage.kernel.api.runtime import RuntimeContext
from sage.kernel.api.service_client import call_service

__version__ = "0.1.0"

__all__ = [
    "BaseEnvironment",
    "LocalEnvironment",
    "RemoteEnvironment",
    "FlownetEnvironment",
    "DataStream",
    "ConnectedStreams",
    "Transformation",
    "Partitioner",
    "RuntimeContext",
    "call_service",
    "SageError",
    "ConfigError",
    "ResourceError",
    "InfeasibleError",
    "PlanError",
    "JobFailedError",
]
