"""SAGE's core definitions: the function interfaces and StopSignal (SAGE Kernel's sage.common.core)."""

from sage.common.core import functions as _functions
from sage.common.core.functions import *  # noqa: F401,F403 (the same names, re-exported)
from sage.common.core.signals import StopSignal

__all__ = [*_functions.__all__, "StopSignal"]
