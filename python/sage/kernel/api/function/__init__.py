"""Compatibility: SAGE Kernel's older home of the function interfaces (now sage.common.core.functions)."""

from sage.common.core.functions import *  # noqa: F401,F403
from sage.common.core.functions import __all__  # noqa: F401
