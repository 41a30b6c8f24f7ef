#!/usr/bin/env python3
"""The operator-resources example of the seed's feature request: per-operator resources next to parallelism.

A heavy map (parallelism 4, 4 CPUs and 8 GB per instance) and a GPU map (parallelism 2, 1 GPU and 2 CPUs each) on a
node of 20 CPUs, 2 GPUs and 64 GB: every instance prints what it was given. With --small the node has 8 CPUs and 1
GPU: the job is refused before any user code runs, naming every operator that does not fit.

Usage: operator_resources.py [--small]
"""

import sys

from sage.common.core.functions import MapFunction, SinkFunction
from sage.kernel.api import InfeasibleError, LocalEnvironment


class Reporting(MapFunction):
    def open(self, ctx):
        a = ctx.assignment
        gpus = ",".join(map(str, a["gpus"])) or "-"
        cpus = ",".join(map(str, a["cpus"])) or "-"
        # one write per line: print() writes the text and the newline apart, and lines of threads would mix
        sys.stdout.write(f"{ctx.name}[{ctx.parallel_index}]: node={a['node']} cpus={cpus} "
                         f"{'exclusive' if a['exclusive'] else 'shared'} gpus={gpus} memory={a['memory']}\n")


class HeavyComputeOperator(Reporting):
    def execute(self, x):
        return x * 2


class GPUInferenceOperator(Reporting):
    def execute(self, x):
        return x + 1


class SumSink(SinkFunction):
    total = 0

    def execute(self, x):
        SumSink.total += x


def main(argv):
    small = "--small" in argv[1:]
    node = ({"name": "small", "cpus": 8, "gpus": 1, "memory": "16GB"} if small
            else {"name": "big", "cpus": 20, "gpus": 2, "memory": "64GB"})
    env = LocalEnvironment("operator_resources", config={"node": node})
    (
        env.from_batch(range(1, 101))
        .map(HeavyComputeOperator, parallelism=4, resources={"num_cpus": 4, "memory": "8GB"})
        .map(GPUInferenceOperator, parallelism=2, resources={"num_gpus": 1, "num_cpus": 2})
        .sink(SumSink)
    )
    try:
        env.submit(autostop=True)
    except InfeasibleError as e:
        print(f"operator_resources: job refused: {e}", file=sys.stderr)
        return 1
    print(f"sum={SumSink.total}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
