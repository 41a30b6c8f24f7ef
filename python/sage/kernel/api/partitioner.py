"""Partitioner: custom routing for DataStream.partition_custom."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class Partitioner(ABC):
    """``partition(record, num_partitions)`` returns the instance (0 .. num_partitions-1) of the next operator that
    receives ``record``. It runs in the sending instance, once per record. Another value fails the job naming it.
    Use a stable hash if you hash (``zlib.crc32``, ``hashlib``): Python's ``hash()`` of a str differs per process."""

    @abstractmethod
    def partition(self, record: Any, num_partitions: int) -> int:
        """The target instance of ``record``."""
