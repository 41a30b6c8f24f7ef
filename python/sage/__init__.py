"""SAGE: SAGE Kernel's Python API over the SAGE streaming engine (written in C).

Programs written for SAGE Kernel import the same names::

    from sage.kernel.api.local_environment import LocalEnvironment
    from sage.common.core.functions.map_function import MapFunction

and run on the C engine: a ``LocalEnvironment`` runs every operator instance as a thread of this process (records are
passed as references, never copied), a ``RemoteEnvironment`` hands the job to a SAGE JobManager, which runs every
instance in a worker process of its own. See docs/python.md.
"""

from __future__ import annotations

from sage import _sage

__all__ = ["__version__", "is_worker", "engine_version"]

__version__ = "0.1.0"


def is_worker() -> bool:
    """True in a worker process a JobManager launched to run one task of a RemoteEnvironment's job.

    The JobManager runs the program again once per task; code that belongs to the submitting process only (headers,
    prompts, reading results) can test this.
    """
    return _sage.is_worker()


def engine_version() -> str:
    """The version of the C engine inside the extension module."""
    return _sage.version()
