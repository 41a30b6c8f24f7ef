"""Services: register_service, call_service (sync, method, timeout, error), call_service_async, the hooks."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest

from sage.common.core.functions import MapFunction, SinkFunction
from sage.kernel.api import LocalEnvironment
from sage.kernel.api.errors import JobFailedError, SageError
from sage.kernel.api.service.base_service import BaseService

events: list[str] = []
results: list = []


class Sink(SinkFunction):
    def execute(self, x):
        results.append(x)


class Cache(BaseService):
    def __init__(self, prefix, *, scale=1):
        super().__init__()
        self.prefix = prefix
        self.scale = scale
        self.store = {}
        self.thread = None

    def setup(self):
        events.append(f"setup {self.name}")

    def start(self):
        events.append("start")

    def stop(self):
        events.append("stop")

    def cleanup(self):
        events.append("cleanup")

    def process(self, x):
        self.thread = threading.get_ident()
        return f"{self.prefix}{x * self.scale}"

    def put(self, k, v):
        self.store[k] = v
        return len(self.store)

    def get(self, k, default=None):
        return self.store.get(k, default)

    def slow(self, seconds):
        time.sleep(seconds)
        return "late"

    def boom(self, x):
        raise ValueError(f"cannot serve {x}")


def fresh():
    events.clear()
    results.clear()


def test_sync_call_default_method_and_hooks():
    fresh()

    class Ask(MapFunction):
        def execute(self, x):
            return self.call_service("cache", x)

    env = LocalEnvironment("svc_sync")
    env.register_service("cache", Cache, "v=", scale=10)
    env.from_batch(range(5)).map(Ask, parallelism=2).sink(Sink)
    env.submit(autostop=True)
    assert sorted(results) == [f"v={i * 10}" for i in range(5)]
    assert events == ["setup cache", "start", "stop", "cleanup"]
    assert env.service_factories["cache"].instance is None  # released after the job


def test_method_keyword_and_state_kept_in_the_service():
    fresh()

    class Store(MapFunction):
        def execute(self, x):
            n = self.call_service("kv", f"k{x}", x * x, method="put")
            return (x, n, self.call_service("kv", f"k{x}", method="get"))

    env = LocalEnvironment("svc_method")
    env.register_service("kv", Cache, "")
    env.from_batch(range(10)).map(Store).sink(Sink)
    env.submit(autostop=True)
    assert [r[2] for r in results] == [x * x for x in range(10)]
    assert [r[1] for r in results] == list(range(1, 11))  # one service object, calls served in order


def test_timeout_raises_timeout_error_and_the_function_decides():
    fresh()

    class Impatient(MapFunction):
        def execute(self, x):
            try:
                return self.call_service("cache", 0.5, method="slow", timeout=0.05)
            except TimeoutError as e:
                return f"timeout: {e}"

    env = LocalEnvironment("svc_timeout")
    env.register_service("cache", Cache, "")
    env.from_batch([1]).map(Impatient).sink(Sink)
    env.submit(autostop=True)
    assert results == ['timeout: service "cache" did not answer within 0.05 s']


def test_service_error_raises_runtime_error_with_its_traceback():
    fresh()

    class Careful(MapFunction):
        def execute(self, x):
            try:
                return self.call_service("cache", x, method="boom")
            except RuntimeError as e:
                return str(e)

    env = LocalEnvironment("svc_error")
    env.register_service("cache", Cache, "")
    env.from_batch([7]).map(Careful).sink(Sink)
    env.submit(autostop=True)
    (msg,) = results
    assert msg.startswith("service 'cache' method 'boom' raised ValueError: cannot serve 7")
    assert "Traceback" in msg and "in boom" in msg


def test_unknown_service_and_method():
    fresh()

    class Lost(MapFunction):
        def execute(self, x):
            out = []
            for name, method in (("nope", None), ("cache", "missing")):
                try:
                    self.call_service(name, x, method=method)
                except RuntimeError as e:
                    out.append(str(e).splitlines()[0])
            return out

    env = LocalEnvironment("svc_unknown")
    env.register_service("cache", Cache, "")
    env.from_batch([1]).map(Lost).sink(Sink)
    env.submit(autostop=True)
    assert results == [[
        'no service "nope" is registered (env.register_service)',
        "service 'cache' method 'missing' raised AttributeError: service 'cache' (Cache) has no method 'missing'",
    ]]


def test_async_calls_return_futures():
    fresh()

    class Fanout(MapFunction):
        def execute(self, x):
            futs = [self.call_service_async("cache", x + i) for i in range(3)]
            assert all(isinstance(f, Future) for f in futs)
            bad = self.call_service_async("cache", x, method="boom")
            with pytest.raises(RuntimeError, match="cannot serve"):
                bad.result(timeout=10)
            slow = self.call_service_async("cache", 0.3, method="slow", timeout=0.05)
            with pytest.raises(TimeoutError):
                slow.result(timeout=10)
            return [f.result(timeout=10) for f in futs]

    env = LocalEnvironment("svc_async")
    env.register_service("cache", Cache, "a")
    env.from_batch([0, 10]).map(Fanout).sink(Sink)
    env.submit(autostop=True)
    assert sorted(results) == [["a0", "a1", "a2"], ["a10", "a11", "a12"]]


def test_any_class_is_a_service_and_runs_on_its_own_thread():
    fresh()

    class Plain:
        def __init__(self):
            self.thread = None

        def process(self, x):
            self.thread = threading.get_ident()
            return x + 1

    class Ask(MapFunction):
        def execute(self, x):
            return (self.call_service("plain", x), threading.get_ident())

    env = LocalEnvironment("svc_plain")
    host = env.register_service("plain", Plain)
    env.from_batch([1, 2]).map(Ask).sink(Sink)
    env.submit(autostop=True)
    assert sorted(r[0] for r in results) == [2, 3]


def test_a_service_whose_start_fails_fails_submit_with_its_exception():
    fresh()

    class Broken(BaseService):
        def start(self):
            raise OSError("model file missing")

    env = LocalEnvironment("svc_start")
    env.register_service("broken", Broken)
    env.from_batch([1]).sink(Sink)
    with pytest.raises(SageError) as ei:
        env.submit(autostop=True)
    assert 'service "broken" failed to start' in str(ei.value)
    assert isinstance(ei.value.__cause__, OSError)
    assert results == []


def test_a_call_outside_the_job_raises():
    class Early(MapFunction):
        def execute(self, x):
            return x

    with pytest.raises(RuntimeError, match="Runtime context not initialized"):
        Early().call_service("x")


def test_failed_service_call_can_fail_the_job():
    fresh()

    class Strict(MapFunction):
        def execute(self, x):
            return self.call_service("cache", x, method="boom")

    env = LocalEnvironment("svc_fail")
    env.register_service("cache", Cache, "")
    env.from_batch([3]).map(Strict).sink(Sink)
    with pytest.raises(JobFailedError) as ei:
        env.submit(autostop=True)
    assert 'operator "Strict" instance 0 failed after 1 record' in str(ei.value)
    assert "cannot serve 3" in str(ei.value)


def test_a_service_name_or_resources_that_cannot_be_used_are_refused_at_registration():
    env = LocalEnvironment("svc_refused")
    with pytest.raises(SageError) as e:
        env.register_service("models/gpt", Cache, "")
    assert 'the service name "models/gpt" contains \'/\'' in str(e.value)
    env = LocalEnvironment("svc_refused2")
    with pytest.raises(SageError) as e:
        env.register_service("model", Cache, "", resources={"num_gpus": -1})
    assert 'service "model": resources:' in str(e.value) and "num_gpus" in str(e.value)
