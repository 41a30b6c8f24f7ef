#!/usr/bin/env python3
"""Pipelines the remote tests submit to a JobManager (test_remote.py). The JobManager runs this program again once
per worker, with the same arguments: every worker rebuilds the same pipeline and runs its own task.

Usage: remote_job.py MODE PORT OUTDIR
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time

import sage
from sage.common.core.functions import FlatMapFunction, MapFunction, SinkFunction
from sage.kernel.api import JobFailedError, SageError
from sage.kernel.api.remote_environment import RemoteEnvironment
from sage.kernel.api.service.base_service import BaseService

WORDS = ("the quick brown fox jumps over the lazy dog and the cat " * 40).split()


outdir = "."


class FileSink(SinkFunction):
    """Each instance writes its records, one repr per line, to OUTDIR/<operator>.<instance>."""

    def __init__(self):
        super().__init__()
        self.f = None

    def execute(self, x):
        if self.f is None:
            self.f = open(os.path.join(outdir, f"{self.ctx.name}.{self.ctx.parallel_index}"), "w")
        self.f.write(repr(x) + "\n")

    def close(self):
        if self.f:
            self.f.close()


class CountWords(FlatMapFunction):
    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def execute(self, word):
        assert self.ctx.get_key() == word
        self.counts[word] += 1

    def close(self):
        return [(w, n, os.getpid()) for w, n in self.counts.items()]


class Fragile(MapFunction):
    def execute(self, x):
        if x == 13:
            raise ZeroDivisionError(f"record {x} divides by zero")
        return x


class Lock(MapFunction):
    def execute(self, x):
        return {"x": x, "lock": threading.Lock()}


class Doubler(BaseService):
    def process(self, x):
        return (2 * x, os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES"))

    def invert(self, x):
        return 1 / x


class Gate(MapFunction):
    """Holds its first record until the file OUTDIR/go exists: the job runs meanwhile."""

    def execute(self, x):
        while not os.path.exists(os.path.join(outdir, "go")):
            time.sleep(0.01)  # the file is the condition
        return x


class AskService(MapFunction):
    def execute(self, x):
        doubled, service_pid, gpus = self.call_service("doubler", x)
        return (doubled, service_pid, os.getpid(), gpus)


def main() -> int:
    global outdir
    mode, port, outdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    env = RemoteEnvironment(f"py_{mode}", port=port)
    src = env.from_batch(list(range(1, 41)) if mode != "wordcount" else WORDS)
    if mode == "wordcount":
        (src.map(lambda w: w, parallelism=2).keyby(lambda w: w).flatmap(CountWords, parallelism=3)
            .sink(FileSink, parallelism=2, name="counts"))
    elif mode == "fail":
        src.map(Fragile, parallelism=2).sink(FileSink, name="out")
    elif mode == "unpicklable":
        src.map(Lock).map(lambda r: r["x"], parallelism=2).sink(FileSink, name="out")
    elif mode == "service":
        env.register_service("doubler", Doubler, resources={"num_gpus": 1})
        src.map(AskService, parallelism=2).sink(FileSink, name="out")
    elif mode == "service_open":
        env.register_service("doubler", Doubler)
        src.map(Gate).sink(FileSink, name="out")
    elif mode == "loop":
        # each x goes round x % 5 + 1 times (one process per task, the loop's markers between them)
        fut = env.from_future("again")
        step = src.map(lambda x: (x, x % 5 + 1)).union(fut).map(
            lambda r: (r[0], r[1] - 1), parallelism=2, name="step")
        step.filter(lambda r: r[1] > 0, name="back").fill_future(fut)
        step.filter(lambda r: r[1] == 0, name="leave").map(lambda r: r[0]).sink(FileSink, name="out")
    elif mode == "infeasible":
        (src.map(lambda x: x, parallelism=2, resources={"num_cpus": 8}, name="heavy")
            .map(lambda x: x, resources={"num_gpus": 4}, name="gpu").sink(FileSink, name="out"))
    elif mode == "drift":
        # a program that builds another pipeline in its workers than in the client: refused by the plan hash
        src.map(lambda x: x, parallelism=3 if sage.is_worker() else 2).sink(FileSink, name="out")
    else:
        raise SystemExit(f"unknown mode {mode}")

    try:
        job = env.submit(autostop=True)  # in a worker: runs its task and ends the process here
    except (JobFailedError, SageError) as e:
        print(f"FAILED {type(e).__name__}: {e}")
        return 1
    print(f"job {job} {env.state}")
    for row in env.metrics_table():
        print(f"{row['operator']} {row['instance']} {row['records_in']} {row['records_out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
