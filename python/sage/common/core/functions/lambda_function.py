"""Plain callables as functions (what map/filter/... do with a lambda)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sage.common.core.functions.base_function import BaseFunction
from sage.common.core.functions.filter_function import FilterFunction
from sage.common.core.functions.flatmap_function import FlatMapFunction
from sage.common.core.functions.keyby_function import KeyByFunction
from sage.common.core.functions.map_function import MapFunction
from sage.common.core.functions.sink_function import SinkFunction
from sage.common.core.functions.source_function import SourceFunction


class _Lambda:
    """The callable is bound as the instance's ``execute``: the engine calls it directly."""

    def __init__(self, lambda_func: Callable[..., Any], **kwargs: Any) -> None:
        self.ctx = None
        self._logger = None
        self.lambda_func = lambda_func
        self.execute = lambda_func  # type: ignore[method-assign]

    def execute(self, *args: Any) -> Any:  # replaced per instance by the callable itself
        return self.lambda_func(*args)


class LambdaMapFunction(_Lambda, MapFunction):
    """A callable as a map."""


class LambdaFilterFunction(_Lambda, FilterFunction):
    """A callable as a filter."""


class LambdaFlatMapFunction(_Lambda, FlatMapFunction):
    """A callable as a flatmap (it returns an iterable)."""

    def __init__(self, lambda_func: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(lambda_func, **kwargs)
        self.out = None


class LambdaSinkFunction(_Lambda, SinkFunction):
    """A callable as a sink."""


class LambdaSourceFunction(_Lambda, SourceFunction):
    """A callable without arguments as a source (each call is a record)."""


class LambdaKeyByFunction(_Lambda, KeyByFunction):
    """A callable as a key function."""


_KINDS: dict[str, type[BaseFunction]] = {
    "map": LambdaMapFunction,
    "filter": LambdaFilterFunction,
    "flatmap": LambdaFlatMapFunction,
    "sink": LambdaSinkFunction,
    "source": LambdaSourceFunction,
    "keyby": LambdaKeyByFunction,
}


def wrap_lambda(func: Callable[..., Any], func_type: str | None = None) -> type[BaseFunction]:
    """A function class whose instances call ``func`` (``func_type``: map, filter, flatmap, sink, source, keyby;
    default map)."""
    base = _KINDS.get(func_type or "map")
    if base is None:
        raise ValueError(f"Unsupported function type: {func_type}")

    class Wrapped(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(func)

    Wrapped.__name__ = Wrapped.__qualname__ = f"Wrapped{base.__name__[6:]}"
    return Wrapped
