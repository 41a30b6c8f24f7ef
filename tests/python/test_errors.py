"""Errors: an exception in user code fails the job with operator, instance, record count and the Python traceback;
declaration and configuration errors raise at once with the engine's message."""

from __future__ import annotations

import threading

import pytest

from sage.common.core.functions import FlatMapFunction, MapFunction, SinkFunction, SourceFunction
from sage.kernel.api import (
    ConfigError,
    JobFailedError,
    LocalEnvironment,
    PlanError,
    SageError,
)


class Fragile(MapFunction):
    def execute(self, x):
        if x == 41:
            return self.deeper(x)
        return x

    def deeper(self, x):
        raise ValueError(f"record {x} is cursed")


def test_exception_fails_the_job_with_traceback():
    env = LocalEnvironment("fragile")
    env.from_batch(range(100)).map(Fragile).sink(lambda x: None)
    with pytest.raises(JobFailedError) as ei:
        env.submit(autostop=True)
    msg = str(ei.value)
    assert msg.startswith('operator "Fragile" instance 0 failed after 42 records: ValueError: record 41 is cursed\n')
    assert "Traceback (most recent call last):" in msg
    assert "in deeper" in msg and 'raise ValueError(f"record {x} is cursed")' in msg
    assert isinstance(ei.value.__cause__, ValueError)  # the original exception, with its full traceback
    assert ei.value.code_name == "SAGE_EUSER"
    assert env.state == "failed"


def test_long_tracebacks_keep_the_innermost_frames():
    class Deep(MapFunction):
        def execute(self, x):
            return self.down(60)

        def down(self, n):
            if n == 0:
                raise KeyError("bottom")
            return self.down(n - 1)

    env = LocalEnvironment("deep")
    env.from_batch([1]).map(Deep).sink(lambda x: None)
    with pytest.raises(JobFailedError) as ei:
        env.execute()
    msg = str(ei.value)
    assert "KeyError: 'bottom'" in msg.splitlines()[0]
    assert "outer frames cut" in msg and msg.rstrip().endswith("KeyError: 'bottom'")
    assert len(msg.split(": ", 1)[1].encode()) <= 511


def test_key_function_error_is_reported_by_the_sender():
    env = LocalEnvironment("badkey")
    env.from_batch([{"user": 1}, {"id": 2}], name="events").keyby(lambda r: r["user"]).sink(lambda x: None)
    with pytest.raises(JobFailedError) as ei:
        env.execute()
    msg = str(ei.value)
    assert msg.startswith('operator "events" instance 0 failed after emitting 1 record: the key function <lambda> '
                          "(keyby): KeyError: 'user'")
    assert "Traceback" in msg


def test_key_too_long_fails_clearly():
    env = LocalEnvironment("longkey")
    env.from_batch(["x" * 5000], name="src").keyby(lambda s: s).sink(lambda x: None)
    with pytest.raises(JobFailedError, match="longer than 1024 bytes in its canonical form"):
        env.execute()


def test_errors_in_constructor_open_close_and_sources():
    class BadInit(MapFunction):
        def __init__(self):
            super().__init__()
            raise OSError("no model")

        def execute(self, x):
            return x

    class BadClose(SinkFunction):
        def execute(self, x):
            pass

        def close(self):
            raise RuntimeError("flush failed")

    class BadSource(SourceFunction):
        def execute(self, data=None):
            raise ConnectionError("broker down")

    for build, want in (
        (lambda e: e.from_batch([1]).map(BadInit).sink(lambda x: None),
         'operator "BadInit" instance 0 failed after 0 records: building its function: OSError: no model'),
        (lambda e: e.from_batch([1]).sink(BadClose),
         'operator "BadClose" instance 0 failed after 1 record: in close(): RuntimeError: flush failed'),
        (lambda e: e.from_source(BadSource).sink(lambda x: None),
         'operator "BadSource" instance 0 failed after emitting 0 records: ConnectionError: broker down'),
    ):
        env = LocalEnvironment("hooks")
        build(env)
        with pytest.raises(JobFailedError) as ei:
            env.execute()
        assert str(ei.value).startswith(want), str(ei.value)


def test_a_flatmap_that_swallows_everything_still_ends_with_the_job():
    started = threading.Event()

    class Greedy(FlatMapFunction):
        def execute(self, x):
            for i in range(10**9):
                try:
                    self.collect(i)
                except Exception:  # EmitAborted is a BaseException: not caught here
                    pass
                started.set()

    class Stuck(SinkFunction):
        def execute(self, x):
            raise ValueError("sink refuses")

    env = LocalEnvironment("swallow")
    env.from_batch([1]).flatmap(Greedy).sink(Stuck, parallelism=2)
    with pytest.raises(JobFailedError, match="sink refuses"):
        env.execute()


def test_declaration_errors_raise_at_once():
    env = LocalEnvironment("decl")
    src = env.from_batch([1])
    with pytest.raises(PlanError, match="parallelism 0: it must be at least 1"):
        src.map(lambda x: x, parallelism=0)
    with pytest.raises(PlanError, match=r"parallelism 5000 is outside 1..1024"):
        src.map(lambda x: x, parallelism=5000)
    env = LocalEnvironment("decl2")
    src = env.from_batch([1])
    src.map(lambda x: x, name="m").sink(lambda x: None)
    with pytest.raises(PlanError, match='operator name "m" is already used'):
        src.map(lambda x: x, name="m")
    with pytest.raises(TypeError, match="parallelism must be an int"):
        LocalEnvironment("decl3").from_batch([1], parallelism="2")
    with pytest.raises(TypeError, match="resources must be a dict"):
        LocalEnvironment("decl4").from_batch([1], resources="num_cpus=2")
    with pytest.raises(PlanError, match="'/'"):
        LocalEnvironment("decl5").from_batch([1], name="a/b")


def test_config_errors_and_ignored_kernel_keys(caplog):
    with pytest.raises(ConfigError, match='unknown key "batch_byte"'):
        LocalEnvironment("cfg", config={"batch_byte": 100})
    with pytest.raises(ConfigError, match='node config: unknown key "cpu"'):
        LocalEnvironment("cfg", config={"node": {"cpu": 4}})
    with pytest.raises(ConfigError, match="max_atempts"):
        LocalEnvironment("cfg", config={"fault_tolerance": {"strategy": "restart", "max_atempts": 2}})
    env = LocalEnvironment("cfg", config={"ray": {"address": "ray://x:10001"}, "execution_mode": "distributed"})
    assert "means nothing here" in caplog.text
    env.from_batch([1]).sink(lambda x: None)
    env.execute()


def test_run_control_misuse():
    env = LocalEnvironment("misuse")
    with pytest.raises(SageError, match="nothing was submitted"):
        env.wait()
    env.from_batch([1]).sink(lambda x: None)
    env.execute()
    with pytest.raises(SageError, match="already ran its job"):
        env.submit()
    with pytest.raises(SageError):
        env.from_batch([2])  # declaring after submit
    env.close()
    with pytest.raises(SageError, match="closed"):
        env.from_batch([3])


def test_no_sink_is_a_plan_error():
    env = LocalEnvironment("nosink")
    env.from_batch([1]).map(lambda x: x)
    with pytest.raises(PlanError, match="has no consumer|no sink"):
        env.submit()


def test_ctx_used_off_its_thread_or_after_the_job():
    kept = []
    errors = []

    class Leaky(MapFunction):
        def execute(self, x):
            kept.append(self.ctx)

            def other():
                try:
                    self.ctx.get_key()
                except RuntimeError as e:
                    errors.append(str(e))

            t = threading.Thread(target=other)
            t.start()
            t.join()
            return x

    env = LocalEnvironment("leaky")
    env.from_batch([1]).map(Leaky).sink(lambda x: None)
    env.execute()
    assert errors == ["self.ctx is usable only on the thread of its operator instance"]
    with pytest.raises(RuntimeError, match="only while its operator instance runs"):
        kept[0].get_metrics().record("x", 1)
