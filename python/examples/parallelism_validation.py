#!/usr/bin/env python3
"""The seed's parallelism validation program, as SAGE Kernel's tutorial shows it, on the SAGE engine.

Numbers 1..30 from a BatchFunction source, a map with parallelism 4 (DistMapper), a filter keeping multiples of 3 with
parallelism 3, a sink with parallelism 2; one line per record per stage, then a per-instance parallelism summary.

Usage: parallelism_validation.py [--jobmanager HOST:PORT]
Without arguments the job runs in this process (LocalEnvironment: threads); with --jobmanager a JobManager runs it,
one worker process per instance (RemoteEnvironment; the per-record lines are then in `sage job logs`).
"""

import os
import sys
import threading
import time

import sage
from sage.common.core.functions.base_function import BaseFunction
from sage.common.core.functions.batch_function import BatchFunction
from sage.kernel.api.local_environment import LocalEnvironment
from sage.kernel.api.remote_environment import RemoteEnvironment


class NumberListSource(BatchFunction):
    """A simple batch source that produces a list of numbers"""

    def __init__(self, numbers):
        super().__init__()
        self.numbers = numbers
        self.index = 0

    def execute(self):
        if self.index >= len(self.numbers):
            return None
        value = self.numbers[self.index]
        self.index += 1
        return value


class DistributedProcessor(BaseFunction):
    """A processor that shows which worker/instance is handling the data"""

    def __init__(self, processor_name="DistProcessor"):
        super().__init__()
        self.processor_name = processor_name
        self.instance_id = id(self)

    def execute(self, data):
        result = f"{self.processor_name}[{self.instance_id}@{os.getpid()}]: {data}"
        print(f"⚙️  {result} (Thread: {threading.get_ident()})")
        time.sleep(0.1)  # Simulate processing time
        return data


class DistributedFilter(BaseFunction):
    """A filter that shows distributed execution"""

    def execute(self, data):
        passes = isinstance(data, int) and data % 3 == 0
        status = "PASSED" if passes else "BLOCKED"
        print(f"{'✅' if passes else '❌'} Filter[{id(self)}@{os.getpid()}]: {data} {status}")
        return passes


class DistributedSink(BaseFunction):
    """Sink that validates and prints final results"""

    def __init__(self):
        super().__init__()
        self.results = []

    def execute(self, data):
        self.results.append(data)
        print(f"🎯 SINK[{id(self)}@{os.getpid()}]: {data}")
        return data


def main(argv):
    if len(argv) == 3 and argv[1] == "--jobmanager":
        host, _, port = argv[2].rpartition(":")
        env = RemoteEnvironment(name="parallelism_validation", host=host or "127.0.0.1", port=int(port))
    elif len(argv) == 1:
        env = LocalEnvironment("parallelism_validation")
    else:
        print(f"usage: {argv[0]} [--jobmanager HOST:PORT]", file=sys.stderr)
        return 2

    (
        env.from_collection(NumberListSource, list(range(1, 31)))
        .map(DistributedProcessor, "DistMapper", parallelism=4)
        .filter(DistributedFilter, parallelism=3)
        .sink(DistributedSink, parallelism=2)
    )

    if not sage.is_worker():
        print("=" * 70)
        print(f"{'REMOTE' if env.platform == 'remote' else 'LOCAL'} ENVIRONMENT - SINGLE STREAM PARALLELISM VALIDATION")
        print("=" * 70)
    env.submit(autostop=True)  # in a worker process: runs that worker's task, then exits

    print("\nPARALLELISM SUMMARY (records per instance)")
    print(f"{'operator':<22} {'instance':>8} {'records_in':>11} {'records_out':>12}")
    for row in env.metrics_table():
        print(f"{row['operator']:<22} {row['instance']:>8} {row['records_in']:>11} {row['records_out']:>12}")
    print(f"job {env.state}")
    env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
