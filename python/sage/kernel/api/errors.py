"""The exceptions the sage package raises (all derive from SageError, a RuntimeError)."""

from sage._sage import (
    ConfigError,
    EmitAborted,
    InfeasibleError,
    JobFailedError,
    PlanError,
    ResourceError,
    SageError,
)

__all__ = [
    "SageError",
    "ConfigError",
    "ResourceError",
    "InfeasibleError",
    "PlanError",
    "JobFailedError",
    "EmitAborted",
]
