"""BaseCoMapFunction: one method per input of a connected stream."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from sage.common.core.functions.base_function import BaseFunction


class BaseCoMapFunction(BaseFunction):
    """``mapN(data)`` handles the records of input N of ``a.connect(b)...comap(cls)``; a result that is not None is
    emitted. The operator ends when every input has ended."""

    @property
    def is_comap(self) -> bool:
        return True

    @abstractmethod
    def map0(self, data: Any) -> Any:
        """A record of input 0."""

    @abstractmethod
    def map1(self, data: Any) -> Any:
        """A record of input 1."""

    def map2(self, data: Any) -> Any:
        return None

    def map3(self, data: Any) -> Any:
        return None

    def map4(self, data: Any) -> Any:
        return None

    def execute(self, data: Any) -> Any:
        raise NotImplementedError(f"CoMap function {type(self).__name__} uses map0..mapN, not execute()")
