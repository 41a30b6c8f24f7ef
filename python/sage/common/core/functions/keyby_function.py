"""KeyByFunction: the key a record is routed by."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Hashable
from typing import Any

from sage.common.core.functions.base_function import BaseFunction


class KeyByFunction(BaseFunction):
    """``execute(data)`` returns the record's key. Records with equal keys reach the same instance of the next
    operator, in every run and every process: the engine hashes a canonical byte form of the key (str as UTF-8, int,
    bytes, tuples of those, else a fixed-protocol pickle), never Python's per-process ``hash()``. Equal numbers
    (1, 1.0, True) are the same key."""

    @abstractmethod
    def execute(self, data: Any) -> Hashable:
        """The key of ``data``."""

    def __call__(self, data: Any) -> Hashable:
        return self.execute(data)


class FieldKeyByFunction(KeyByFunction):
    """The key is a field of the record: ``data[field]`` or ``data.field``; dotted names go deeper
    (``"location.region"``)."""

    field_name: str | None = None

    def __init__(self, field_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if field_name:
            self.field_name = field_name
        if not self.field_name:
            raise ValueError("field_name must be specified")

    def execute(self, data: Any) -> Hashable:
        value = data
        for part in str(self.field_name).split("."):
            if isinstance(value, dict):
                if part not in value:
                    raise KeyError(f"field {part!r} not in the record ({self.field_name!r})")
                value = value[part]
            elif hasattr(value, part):
                value = getattr(value, part)
            else:
                try:
                    value = value[part]
                except (TypeError, KeyError, IndexError) as e:
                    raise KeyError(f"field {part!r} not in the record ({self.field_name!r})") from e
        return value
