"""The user function interfaces of SAGE (SAGE Kernel's sage.common.core.functions)."""

from sage.common.core.functions.base_function import BaseFunction
from sage.common.core.functions.batch_function import BatchFunction
from sage.common.core.functions.comap_function import BaseCoMapFunction
from sage.common.core.functions.filter_function import FilterFunction
from sage.common.core.functions.flatmap_collector import Collector
from sage.common.core.functions.flatmap_function import FlatMapFunction
from sage.common.core.functions.future_function import FutureFunction
from sage.common.core.functions.join_function import BaseJoinFunction
from sage.common.core.functions.keyby_function import FieldKeyByFunction, KeyByFunction
from sage.common.core.functions.lambda_function import LambdaMapFunction, wrap_lambda
from sage.common.core.functions.map_function import MapFunction
from sage.common.core.functions.sink_function import SinkFunction
from sage.common.core.functions.source_function import SourceFunction

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
]
