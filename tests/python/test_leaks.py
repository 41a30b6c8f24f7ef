"""References: records are object handles in a LocalEnvironment; every reference the engine takes is given back,
whatever ends the job (finish, failure, cancel under backpressure). Checked over a million records with the refcount
of a sentinel object and the counts of live objects (sys.gettotalrefcount exists only in debug builds of Python)."""

from __future__ import annotations

import gc
import itertools
import os
import sys
import threading
import tracemalloc

import pytest

from conftest import UNDER_ASAN

from sage.common.core.functions import FlatMapFunction, MapFunction, SinkFunction, SourceFunction
from sage.kernel.api import JobFailedError, LocalEnvironment

N = 200_000 if UNDER_ASAN else 1_000_000


class Sentinel:
    """The record: one object sent N times."""


class Count(SinkFunction):
    n = 0
    lock = threading.Lock()

    def execute(self, x):
        with Count.lock:
            Count.n += 1


def run(build, config=None):
    env = LocalEnvironment("leaks", config=config)
    build(env)
    try:
        env.execute()
    finally:
        env.close()


def live_objects():
    gc.collect()
    return len(gc.get_objects())


def test_a_million_records_across_threads_give_back_every_reference():
    s = Sentinel()
    base = sys.getrefcount(s)

    def build(env):
        (env.from_batch(itertools.repeat(s, N))
            .map(lambda x: x, parallelism=2)            # rebalance 1 -> 2: batches keep references
            .keyby(lambda x: 1)                         # keyed: the key function runs on both sides
            .flatmap(lambda x: (x, x), parallelism=2)
            .filter(lambda x: x is s, parallelism=3)
            .sink(Count, parallelism=2))

    run(build)  # a first run: imports, caches and the like settle
    Count.n = 0
    before = live_objects()
    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    run(build)
    gc.collect()
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(st.size_diff for st in snap1.compare_to(snap0, "filename"))
    del snap0, snap1
    assert Count.n == 2 * N
    assert sys.getrefcount(s) == base
    assert grown < 256 * 1024, f"{grown} bytes more held after {N} records"
    assert live_objects() - before < 50


def test_new_objects_per_record_are_all_freed():
    class Box:
        alive = 0

        def __init__(self, v):
            Box.alive += 1
            self.v = v

        def __del__(self):
            Box.alive -= 1

    def build(env):
        (env.from_batch(range(N // 4), parallelism=2)
            .map(lambda v: Box(v), parallelism=3)
            .map(lambda b: Box(b.v + 1), parallelism=2)
            .sink(Count))

    Count.n = 0
    run(build)
    gc.collect()
    assert Count.n == N // 4
    assert Box.alive == 0


@pytest.mark.parametrize("how", ["failure", "cancel"])
def test_references_come_back_when_the_job_fails_or_is_canceled(how):
    s = Sentinel()
    base = sys.getrefcount(s)
    started = threading.Event()

    class Slow(SinkFunction):
        seen = 0

        def execute(self, x):
            Slow.seen += 1
            started.set()
            if how == "failure" and Slow.seen == 5000:
                raise ValueError("enough")
            for _ in range(200):  # slow: the queues fill up, producers wait (backpressure)
                pass

    env = LocalEnvironment("fail_or_cancel", config={"batch_bytes": 512, "channel_bytes": 4096})
    (env.from_batch(itertools.repeat(s, N)).map(lambda x: x, parallelism=2).sink(Slow, parallelism=2))
    Slow.seen = 0
    if how == "failure":
        try:
            env.execute()
            raise AssertionError("the job did not fail")
        except JobFailedError as e:  # its __cause__'s traceback holds the record (the frame's x) until e goes
            assert "enough" in str(e)
    else:
        env.submit()
        assert started.wait(30)
        assert env.cancel() == "canceled"
    env.close()
    gc.collect()
    assert sys.getrefcount(s) == base


def test_a_stream_source_object_and_its_records_are_released():
    s = Sentinel()
    base = sys.getrefcount(s)

    class Gen(SourceFunction):
        def __init__(self):
            super().__init__()
            self.k = 0
            self.keep = s

        def execute(self, data=None):
            from sage.common.core import StopSignal

            self.k += 1
            return s if self.k <= 1000 else StopSignal("done")

    run(lambda env: env.from_source(Gen).flatmap(lambda x: [x, x, x]).sink(Count, parallelism=2))
    gc.collect()
    assert sys.getrefcount(s) == base
