"""Services: named objects operators call (env.register_service)."""

from __future__ import annotations

import functools
import inspect
import json
import pickle
import traceback
from typing import Any

from sage.kernel.api.service.base_service import BaseService, ServiceContext

__all__ = ["BaseService", "ServiceContext"]

_JSON_MARK = b"\x00json"  # a request in SAGE's JSON form (pickles start with b"\x80")


class _ServiceHost:
    """The engine's side of one registered service: builds the object when the job starts, serves pickled requests
    (method, args, kwargs) on the service's thread, runs the stop hooks when the job ended. Replies are pickled
    ("ok", result) or ("error", type name, message, traceback)."""

    def __init__(self, name: str, service_class: Any, args: tuple, kwargs: dict) -> None:
        self.name = name
        self.service_class = service_class
        self.args = args
        self.kwargs = kwargs
        self.instance: Any = None

    def _start(self) -> None:
        cls = self.service_class
        if isinstance(cls, type) or inspect.isfunction(cls) or isinstance(cls, functools.partial):
            inst = cls(*self.args, **self.kwargs)  # a class, or a factory function
        else:
            inst = cls  # an object: served as it is
        try:
            if getattr(inst, "ctx", None) is None:
                inst.ctx = ServiceContext(self.name)
        except AttributeError:
            pass
        self.instance = inst
        for hook in ("setup", "start"):
            fn = getattr(inst, hook, None)
            if callable(fn):
                fn()

    def _dispatch(self, request: bytes) -> bytes:
        if request[:5] == _JSON_MARK:
            return self._dispatch_json(request[5:])
        try:
            method, args, kwargs = pickle.loads(request)
            fn = getattr(self.instance, method, None)
            if fn is None or not callable(fn):
                raise AttributeError(f"service {self.name!r} ({type(self.instance).__name__}) has no method {method!r}")
            result = fn(*args, **kwargs)
        except BaseException as e:  # the caller raises it
            return pickle.dumps(("error", type(e).__name__, str(e), traceback.format_exc()), protocol=5)
        try:
            return pickle.dumps(("ok", result), protocol=5)
        except Exception as e:
            return pickle.dumps(
                ("error", type(e).__name__, f"the result of {method!r} cannot be pickled: {e}", ""), protocol=5
            )

    def _dispatch_json(self, request: bytes) -> bytes:
        """SAGE's JSON form, for callers outside Python (`sage service call --method M`): {"method": m, "args":
        [...], "kwargs": {...}} in, {"ok": result} or {"error": type name, "message": text} out."""
        try:
            req = json.loads(request)
            method = req.get("method") or "process"
            fn = getattr(self.instance, method, None)
            if fn is None or not callable(fn):
                raise AttributeError(f"service {self.name!r} ({type(self.instance).__name__}) has no method {method!r}")
            out = {"ok": fn(*req.get("args", []), **req.get("kwargs", {}))}
            return _JSON_MARK + json.dumps(out).encode()
        except BaseException as e:  # the caller prints it
            return _JSON_MARK + json.dumps({"error": type(e).__name__, "message": str(e)}).encode()

    def _stop(self) -> None:
        inst, self.instance = self.instance, None
        if inst is None:
            return
        errors = []
        for hook in ("stop", "cleanup"):
            fn = getattr(inst, hook, None)
            if callable(fn):
                try:
                    fn()
                except Exception as e:  # both hooks run; the first error is reported
                    errors.append(e)
        if errors:
            raise errors[0]
