"""SAGE's core definitions: the function interfaces and StopSignal (SAGE Kernel's sage.common.core)."""

from sage.common.core.functions import (
    BaseCoMapFunction,
    BaseFunction,
    BaseJoinFunction,
    BatchFunction,
    Collector,
    FieldKeyByFunction,
    FilterFunction,
    FlatMapFunction,
    FutureFunction,
    KeyByFunction,
    LambdaMapFunction,
    MapFunction,
    SinkFunction,
    SourceFunction,
    wrap_lambda,
)
from sage.common.core.signals import StopSignal

__all__ = [
    "BaseFunction",
    "MapFunction",
    "FilterFunction",
    "FlatMapFunction",
    "SinkFunction",
    "SourceFunction",
    "BatchFunction",
    "KeyByFunction",
    "FieldKeyByFunction",
    "BaseJoinFunction",
    "BaseCoMapFunction",
    "Collector",
    "LambdaMapFunction",
    "wrap_lambda",
    "FutureFunction",
    "StopSignal",
]
