"""The DataStream API on a LocalEnvironment: sources, transformations, routing, connect+comap, join, metrics, run
control."""

from __future__ import annotations

import collections
import threading
import time

import pytest

from sage.common.core import StopSignal
from sage.common.core.functions import (
    BaseCoMapFunction,
    BaseJoinFunction,
    BatchFunction,
    FieldKeyByFunction,
    FilterFunction,
    FlatMapFunction,
    KeyByFunction,
    MapFunction,
    SinkFunction,
    SourceFunction,
)
from sage.kernel.api import LocalEnvironment, Partitioner
from sage.kernel.api.errors import JobFailedError

out: list = []
lock = threading.Lock()


class Collect(SinkFunction):
    def execute(self, x):
        with lock:
            out.append(x)


class Tagged(SinkFunction):
    """(instance, record) pairs."""

    def execute(self, x):
        out.append((self.ctx.parallel_index, x))


@pytest.fixture(autouse=True)
def clear():
    out.clear()
    yield
    out.clear()


def test_lambdas_everywhere_and_from_collection():
    env = LocalEnvironment()
    assert env.name == "localenvironment"
    (env.from_collection([1, 2, 3, 4, 5, 6])
        .map(lambda x: x * 10)
        .filter(lambda x: x != 30)
        .flatmap(lambda x: [x, -x])
        .sink(lambda x: out.append(x)))
    env.execute()
    assert sorted(out) == sorted([v for x in (1, 2, 4, 5, 6) for v in (x * 10, -x * 10)])


def test_map_returning_none_emits_nothing_and_filter_uses_truthiness():
    class Evens(MapFunction):
        def execute(self, x):
            return x if x % 2 == 0 else None

    class NonEmpty(FilterFunction):
        def execute(self, x):
            return [0] * x  # truthy unless x == 0

    env = LocalEnvironment("none")
    env.from_batch(range(10)).map(Evens).filter(NonEmpty).sink(Collect)
    env.submit(autostop=True)
    assert sorted(out) == [2, 4, 6, 8]
    assert env.metric("Evens", "records_out")["value"] == 5


def test_map_style_subclass():
    class Double(MapFunction):
        def map(self, value):
            return value * 2

    env = LocalEnvironment("mapstyle")
    env.from_batch([1, 2]).map(Double).sink(Collect)
    env.execute()
    assert sorted(out) == [2, 4]


def test_flatmap_collect_and_close_emit():
    class Split(FlatMapFunction):
        def __init__(self, sep):
            super().__init__()
            self.sep = sep
            self.n = 0

        def execute(self, line):
            for w in line.split(self.sep):
                self.collect(w)
            self.n += 1
            return ["#"]  # returned items are emitted too

        def close(self):
            self.collect(f"lines={self.n}")
            return ["end"]

    env = LocalEnvironment("flat")
    env.from_batch(["a b", "c"]).flatmap(Split, " ").sink(Collect)
    env.execute()
    assert out == ["a", "b", "#", "c", "#", "lines=2", "end"]


def test_sources_batch_stream_stopsignal_and_idle():
    class Countdown(BatchFunction):
        def __init__(self, n):
            super().__init__()
            self.n = n

        def execute(self):
            self.n -= 1
            return self.n if self.n >= 0 else None

    class Ticks(SourceFunction):
        def __init__(self):
            super().__init__()
            self.k = 0

        def execute(self, data=None):
            self.k += 1
            if self.k % 3 == 0:
                return None  # nothing right now: called again
            if self.k > 20:
                return StopSignal("done")
            return self.k

    env = LocalEnvironment("sources")
    a = env.from_batch(Countdown, 5)
    b = env.from_source(Ticks)
    a.sink(Collect)
    b.sink(Collect, name="ticks")
    env.submit(autostop=True)
    assert collections.Counter(out) == collections.Counter(
        [4, 3, 2, 1, 0] + [k for k in range(1, 21) if k % 3 != 0])


def test_unbounded_source_until_stop():
    started = threading.Event()

    class Forever(SourceFunction):
        def execute(self, data=None):
            started.set()
            return 1

    class Count(SinkFunction):
        n = 0
        closed = False

        def execute(self, x):
            Count.n += 1

        def close(self):
            Count.closed = True

    env = LocalEnvironment("forever")
    env.from_source(Forever).sink(Count)
    env.submit()
    assert env.wait(timeout=0.05) is None  # still running
    assert started.wait(10)
    assert env.stop() == "stopped"
    assert Count.n > 0 and Count.closed


def test_parallel_from_batch_splits_items():
    env = LocalEnvironment("split")
    env.from_batch(list(range(100)), parallelism=3).map(lambda x: x, parallelism=3).sink(Collect, parallelism=2)
    env.execute()
    assert sorted(out) == list(range(100))
    assert [env.metric("source", "records_out", i)["value"] for i in range(3)] == [34, 33, 33]


def test_keyby_lambda_key_and_get_key():
    class PerKey(FlatMapFunction):
        def __init__(self):
            super().__init__()
            self.keys = set()

        def execute(self, rec):
            k = self.ctx.get_key()
            assert k == rec["user"]
            self.keys.add(k)

        def close(self):
            return [(self.ctx.parallel_index, k) for k in self.keys]

    recs = [{"user": u, "n": i} for i, u in enumerate(["ann", "bob", "cy", 0, 17, ("t", 1)] * 20)]
    env = LocalEnvironment("keyed")
    env.from_batch(recs, parallelism=2).key_by(lambda r: r["user"]).flatmap(PerKey, parallelism=4).sink(Collect)
    env.execute()
    owners = collections.defaultdict(set)
    for inst, k in out:
        owners[k].add(inst)
    assert set(owners) == {"ann", "bob", "cy", 0, 17, ("t", 1)}
    assert all(len(v) == 1 for v in owners.values())  # each key at exactly one instance


def test_keyby_classes_and_strategies():
    class ByMod(KeyByFunction):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def execute(self, x):
            return x % self.m

    env = LocalEnvironment("strategies")
    src = env.from_batch(range(40))
    src.keyby(ByMod, "hash", 4).sink(Tagged, parallelism=3, name="hashed")
    src.keyby(ByMod, strategy="broadcast", parallelism=2).sink(Tagged, name="everyone")
    src.keyby(lambda x: x, strategy="round_robin").sink(Tagged, parallelism=4, name="spread")
    src.keyby(FieldKeyByFunction("real")).sink(Tagged, parallelism=2, name="field")
    env.execute()
    assert env.metric("everyone", "records_in", 0)["value"] == 40
    assert env.metric("everyone", "records_in", 1)["value"] == 40
    assert [env.metric("spread", "records_in", i)["value"] for i in range(4)] == [10, 10, 10, 10]
    with pytest.raises(ValueError, match="strategy"):
        src.keyby(ByMod, strategy="random")


def test_partition_custom_class_object_callable_and_parallelism_hint():
    class ByValue(Partitioner):
        def partition(self, record, num_partitions):
            return record % num_partitions

    env = LocalEnvironment("custom")
    src = env.from_batch(range(12))
    src.partition_custom(ByValue(), parallelism=4).map(lambda x: x, name="p4").sink(Tagged, name="t4", parallelism=4)
    src.partition_custom(ByValue).sink(Tagged, parallelism=3, name="t3")
    src.partition_custom(lambda r, n: 0).sink(Tagged, parallelism=2, name="t2")
    env.execute()
    assert env.operators()[1] == ("p4", 4)  # the hint became the map's parallelism
    assert [env.metric("p4", "records_in", i)["value"] for i in range(4)] == [3, 3, 3, 3]
    assert [env.metric("t3", "records_in", i)["value"] for i in range(3)] == [4, 4, 4]
    assert [env.metric("t2", "records_in", i)["value"] for i in range(2)] == [12, 0]


def test_partitioner_out_of_range_fails_naming_it():
    env = LocalEnvironment("badpart")
    env.from_batch(range(3), name="src").partition_custom(lambda r, n: 7).sink(Collect, parallelism=2)
    with pytest.raises(JobFailedError, match=r'operator "src" instance 0 failed after emitting 0 records: the partitioner <lambda> \(partition_custom\): '
                       r'ValueError: it returned 7 for 2 instances \(expected 0 to 1\)'):
        env.execute()


def test_connect_comap_list_of_callables_and_three_inputs():
    env = LocalEnvironment("comap3")
    a = env.from_batch([1, 2])
    b = env.from_batch(["x"])
    c = env.from_batch([10.5])
    a.connect(b).connect(c).comap([lambda v: ("a", v), lambda v: ("b", v), lambda v: ("c", v)]).sink(Collect)
    env.execute()
    assert sorted(out) == [("a", 1), ("a", 2), ("b", "x"), ("c", 10.5)]


def test_comap_runs_until_every_input_ended():
    class Slow(SourceFunction):
        def __init__(self):
            super().__init__()
            self.n = 0

        def execute(self, data=None):
            self.n += 1
            if self.n > 5:
                return StopSignal("slow done")
            time.sleep(0.02)
            return self.n

    class Both(BaseCoMapFunction):
        def map0(self, x):
            return ("fast", x)

        def map1(self, x):
            return ("slow", x)

    env = LocalEnvironment("comap_end")
    env.from_batch([1]).connect(env.from_source(Slow)).comap(Both, parallelism=2).sink(Collect)
    env.execute()
    assert sorted(out) == [("fast", 1)] + [("slow", i) for i in range(1, 6)]


def test_keyed_comap_and_union_map():
    env = LocalEnvironment("keyed_comap")
    a = env.from_batch([("k1", 1), ("k2", 2)])
    b = env.from_batch([("k1", 10), ("k3", 30)])

    class WithKey(BaseCoMapFunction):
        def map0(self, x):
            return ("left", self.ctx.get_key(), x[1])

        def map1(self, x):
            return ("right", self.ctx.get_key(), x[1])

    a.connect(b).keyby(lambda r: r[0]).comap(WithKey, parallelism=2).sink(Collect)
    a.connect(b).map(lambda r: r[1], name="union").sink(Collect)
    env.execute()
    assert sorted(x for x in out if isinstance(x, tuple)) == [
        ("left", "k1", 1), ("left", "k2", 2), ("right", "k1", 10), ("right", "k3", 30)]
    assert sorted(x for x in out if isinstance(x, int)) == [1, 2, 10, 30]


def test_join_of_two_keyed_streams():
    class UserOrderJoin(BaseJoinFunction):
        def __init__(self):
            super().__init__()
            self.users = {}
            self.orders = collections.defaultdict(list)

        def execute(self, payload, key, tag):
            if tag == 0:
                self.users[key] = payload
                return [(payload["name"], o["id"]) for o in self.orders.pop(key, [])]
            if key in self.users:
                return [(self.users[key]["name"], payload["id"])]
            self.orders[key].append(payload)
            return []

    users = [{"uid": i, "name": f"user{i}"} for i in range(20)]
    orders = [{"uid": i % 20, "id": f"o{i}"} for i in range(60)]
    env = LocalEnvironment("join")
    u = env.from_batch(users).keyby(lambda r: r["uid"])
    o = env.from_batch(orders).keyby(lambda r: r["uid"])
    u.connect(o).join(UserOrderJoin, parallelism=3).sink(Collect)
    env.execute()
    assert sorted(out) == sorted((f"user{i % 20}", f"o{i}") for i in range(60))
    with pytest.raises(ValueError, match="hash-keyed"):
        env2 = LocalEnvironment("join2")
        env2.from_batch([1]).connect(env2.from_batch([2])).join(UserOrderJoin)


def test_metrics_from_inside_functions():
    class Timed(MapFunction):
        def open(self, context):
            self.metrics = context.get_metrics()

        def execute(self, x):
            self.metrics.record("processing_time", x / 1000.0)
            self.metrics.counter("seen")
            return x

    env = LocalEnvironment("metrics")
    env.from_batch(range(1, 101)).map(Timed, parallelism=2).sink(Collect)
    env.execute()
    h = env.metric("Timed", "processing_time")
    assert h["kind"] == "histogram" and h["count"] == 100
    assert h["min"] == pytest.approx(0.001, rel=0.02) and h["max"] == pytest.approx(0.1, rel=0.02)
    assert env.metric("Timed", "seen") == {"kind": "counter", "value": 100}
    assert env.metric("Timed", "nothing") is None
    with pytest.raises(KeyError):
        env.metric("NoSuchOperator", "records_in")


def test_context_attributes_and_thread_rule():
    seen = []

    class Who(MapFunction):
        def execute(self, x):
            seen.append((self.ctx.name, self.ctx.env_name, self.ctx.parallel_index, self.ctx.parallelism,
                         self.ctx.records_in, self.name))
            return x

    env = LocalEnvironment("ctxjob")
    env.from_batch([1, 2]).map(Who, name="who").sink(Collect)
    env.execute()
    assert seen == [("who", "ctxjob", 0, 1, 1, "who"), ("who", "ctxjob", 0, 1, 2, "who")]


def test_print_sink(capfd):
    env = LocalEnvironment("print")
    s = env.from_batch([1, {"a": 1}])
    s.print("out")
    s.print()
    env.execute()
    text = capfd.readouterr().out
    assert "out | 1\n" in text and "out | a=1\n" in text and "\n1\n" in "\n" + text


def test_explain_and_operators():
    env = LocalEnvironment("explained")
    env.from_batch([1]).map(lambda x: x, parallelism=2).sink(Collect, parallelism=2)
    text = env.explain()
    assert 'job "explained"' in text and "chain" in text
    assert env.operators() == [("source", 1), ("map", 2), ("Collect", 2)]


def test_cancel_and_close():
    class Forever(SourceFunction):
        def execute(self, data=None):
            return 1

    env = LocalEnvironment("cancel")
    env.from_source(Forever).sink(Collect)
    env.submit()
    assert env.cancel() == "canceled"
    env.close()
    env.close()  # twice is fine


def test_context_manager_closes():
    with LocalEnvironment("with") as env:
        env.from_batch([1, 2]).sink(Collect)
        env.submit(autostop=True)
    assert sorted(out) == [1, 2]


def test_fault_tolerance_restart_in_embedded_mode():
    attempts = []

    class Flaky(MapFunction):
        def execute(self, x):
            if x == 3 and len(attempts) < 2:
                attempts.append(1)
                raise RuntimeError("transient")
            return x

    env = LocalEnvironment("restart", config={
        "fault_tolerance": {"strategy": "restart", "restart_strategy": "fixed", "max_attempts": 3, "delay": 0.01}})
    env.from_batch(range(5)).map(Flaky).sink(Collect)
    env.execute()
    assert len(attempts) == 2
    assert out == [0, 1, 2] * 2 + [0, 1, 2, 3, 4]  # a user sink sees the failed attempts too (at-least-once)


def test_object_given_instead_of_class():
    class Acc(SinkFunction):
        def __init__(self):
            super().__init__()
            self.items = []

        def execute(self, x):
            self.items.append(x)

    sink = Acc()
    env = LocalEnvironment("objects")
    env.from_batch([1, 2, 3]).sink(sink)
    env.execute()
    assert sink.items == [1, 2, 3]  # instance 0 is the object itself in a local job


def test_a_feedback_loop_refines_until_done():
    """SAGE's future streams: each record goes round until its function lets it out; the job ends by itself."""
    env = LocalEnvironment("future")
    fut = env.from_future("again")
    start = env.from_batch([(i, i % 7) for i in range(300)])
    step = start.union(fut).map(lambda r: (r[0], r[1] - 1, r[2] + 1 if len(r) > 2 else 1), parallelism=3)
    step.filter(lambda r: r[1] > 0).fill_future(fut)
    step.filter(lambda r: r[1] <= 0).sink(Collect, parallelism=2)
    out.clear()
    env.execute()
    assert sorted(out) == [(i, -1, 1) if i % 7 == 0 else (i, 0, i % 7) for i in range(300)]
    with pytest.raises(Exception, match='future "never" is never filled'):
        env2 = LocalEnvironment("unfilled")
        env2.from_future("never").sink(Collect)
        env2.execute()


def test_keyed_word_count_equals_collections_counter():
    """Lines -> words (flatmap, p3) -> keyby(word) -> count per key (p4, emitted at close) -> merged: the same as
    collections.Counter, and every word counted at exactly one instance."""
    text = [f"the cat {i % 7} sat on the mat {i % 13} and the dog {i % 3} ran" for i in range(2000)]

    class Count(FlatMapFunction):
        def __init__(self):
            super().__init__()
            self.counts = collections.Counter()

        def execute(self, word):
            self.counts[self.ctx.get_key()] += 1

        def close(self):
            return [(self.ctx.parallel_index, w, n) for w, n in self.counts.items()]

    env = LocalEnvironment("wordcount")
    (env.from_batch(text, parallelism=2)
        .flatmap(lambda line: line.split(), parallelism=3)
        .keyby(lambda w: w)
        .flatmap(Count, parallelism=4)
        .sink(Collect, parallelism=2))
    env.execute()
    expected = collections.Counter(w for line in text for w in line.split())
    assert collections.Counter({w: n for _, w, n in out}) == expected
    assert len(out) == len(expected)  # one row per word: no word at two instances
    assert len({inst for inst, _, _ in out}) == 4


def test_union_reduce_and_stop_requested():
    # union: the records of every input, unchanged
    env = LocalEnvironment()
    a = env.from_collection([1, 2, 3])
    b = env.from_collection([10, 20])
    c = env.from_collection([100])
    a.union(b, c).sink(Collect)
    env.execute()
    assert sorted(out) == [1, 2, 3, 10, 20, 100]
    with pytest.raises(ValueError, match="at least one other stream"):
        LocalEnvironment().from_collection([1]).union()

    # reduce at close: word count in one call, exact over 3 instances
    out.clear()
    words = ["a", "b", "a", "c", "b", "a"] * 50
    env = LocalEnvironment()
    (env.from_collection(words)
        .keyby(lambda w: w)
        .reduce(lambda n, _: n + 1, initial=0, emit="close", parallelism=3)
        .sink(Collect))
    env.execute()
    assert sorted(out) == [("a", 150), ("b", 100), ("c", 50)]

    # reduce per record: a running value per key (the first value starts it)
    out.clear()
    env = LocalEnvironment()
    env.from_collection([1, 2, 3, 4, 5, 6]).keyby(lambda x: x % 2).reduce(lambda s, x: s + x).sink(Collect)
    env.execute()
    assert [v for k, v in out if k == 1] == [1, 4, 9] and [v for k, v in out if k == 0] == [2, 6, 12]
    with pytest.raises(ValueError, match="reduce needs a keyed stream"):
        LocalEnvironment().from_collection([1]).reduce(lambda s, x: s + x)
    with pytest.raises(ValueError, match="emit='later'"):
        LocalEnvironment().from_collection([1]).keyby(str).reduce(lambda s, x: s, emit="later")

    # stop_requested: a source that loops inside one call ends its loop when the job is stopped
    out.clear()
    seen = []

    class Looping(SourceFunction):
        def execute(self):
            n = 0
            while not self.ctx.stop_requested():
                n += 1
                if n % 1000 == 0:
                    time.sleep(0.001)
            seen.append(n)
            return StopSignal("done")

    env = LocalEnvironment()
    env.from_source(Looping).sink(Collect)
    env.submit()
    time.sleep(0.2)
    env.stop()
    env.wait(10)
    assert seen and seen[0] > 0  # without stop_requested() the loop would never end
