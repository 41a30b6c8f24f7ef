"""The seed documents' own programs, unchanged apart from what never worked in SAGE Kernel: the parallelism
validation pipeline (single stream and CoMap), and the operator-resources example with its infeasible twin."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from conftest import PYTHON

from sage.common.core.functions.base_function import BaseFunction
from sage.common.core.functions.batch_function import BatchFunction
from sage.common.core.functions.comap_function import BaseCoMapFunction
from sage.kernel.api import InfeasibleError
from sage.kernel.api.local_environment import LocalEnvironment

EXAMPLES = Path(__file__).resolve().parents[2] / "python" / "examples"


def run_example(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=120)


def summary(out: str) -> dict[tuple[str, int], tuple[int, int]]:
    rows = re.findall(r"^(\w+)\s+(\d+)\s+(\d+)\s+(\d+)$", out, re.M)
    return {(op, int(i)): (int(a), int(b)) for op, i, a, b in rows}


def test_parallelism_validation_local():
    r = run_example("parallelism_validation.py")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "LOCAL ENVIRONMENT - SINGLE STREAM PARALLELISM VALIDATION" in out
    # one line per record per stage (lines of parallel threads may run together: match anywhere)
    mapped = re.findall(r"DistMapper\[(\d+)@\d+\]: (\d+)", out)
    assert sorted(int(v) for _, v in mapped) == list(range(1, 31))
    assert len({inst for inst, _ in mapped}) == 4  # four mapper instances, each its own object
    filtered = re.findall(r"Filter\[(\d+)@\d+\]: (\d+) (PASSED|BLOCKED)", out)
    assert len(filtered) == 30 and len({i for i, _, _ in filtered}) == 3
    assert sorted(int(v) for _, v, s in filtered if s == "PASSED") == list(range(3, 31, 3))
    sunk = re.findall(r"SINK\[(\d+)@\d+\]: (\d+)", out)
    assert sorted(int(v) for _, v in sunk) == list(range(3, 31, 3))
    assert len({i for i, _ in sunk}) == 2
    s = summary(out)
    assert s[("NumberListSource", 0)] == (0, 30)
    assert sum(s[("DistributedProcessor", i)][0] for i in range(4)) == 30
    assert sum(s[("DistributedFilter", i)][0] for i in range(3)) == 30
    assert sum(s[("DistributedFilter", i)][1] for i in range(3)) == 10
    assert sum(s[("DistributedSink", i)][0] for i in range(2)) == 10
    assert out.rstrip().endswith("job finished")


def test_operator_resources_on_a_20_cpu_2_gpu_64gb_node():
    r = run_example("operator_resources.py")
    assert r.returncode == 0, r.stderr
    lines = sorted(r.stdout.splitlines())
    assert lines == [
        "GPUInferenceOperator[0]: node=big cpus=16,17 exclusive gpus=0 memory=0",
        "GPUInferenceOperator[1]: node=big cpus=18,19 exclusive gpus=1 memory=0",
        "HeavyComputeOperator[0]: node=big cpus=0,1,2,3 exclusive gpus=- memory=8000000000",
        "HeavyComputeOperator[1]: node=big cpus=4,5,6,7 exclusive gpus=- memory=8000000000",
        "HeavyComputeOperator[2]: node=big cpus=8,9,10,11 exclusive gpus=- memory=8000000000",
        "HeavyComputeOperator[3]: node=big cpus=12,13,14,15 exclusive gpus=- memory=8000000000",
        "sum=10200",
    ]


def test_operator_resources_infeasible_twin_refused_before_user_code():
    r = run_example("operator_resources.py", "--small")
    assert r.returncode == 1
    assert r.stdout == ""  # no open() ran: nothing printed
    err = r.stderr
    assert "cannot place the job: 2 operators do not fit" in err
    assert 'operator "HeavyComputeOperator" (parallelism 4)' in err
    assert 'operator "GPUInferenceOperator" (parallelism 2)' in err
    assert "the largest node offers num_cpus=8" in err


class NumberListSource(BatchFunction):
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


class DistributedCoMapProcessor(BaseCoMapFunction):
    def map0(self, data):
        return f"DistCoMap0[{self.ctx.parallel_index}]: {data}"

    def map1(self, data):
        return f"DistCoMap1[{self.ctx.parallel_index}]: {data * 100}"


seen: list[str] = []


class DistributedSink(BaseFunction):
    def execute(self, data):
        seen.append(data)
        return data


def test_multi_stream_comap_runs_until_every_input_ended():
    seen.clear()
    env = LocalEnvironment(name="remote_multi_stream_test")
    stream1 = env.from_collection(NumberListSource, list(range(1, 16, 2)))
    stream2 = env.from_collection(NumberListSource, list(range(2, 17, 2)))
    stream1.connect(stream2).comap(DistributedCoMapProcessor, parallelism=3).sink(DistributedSink, parallelism=2)
    env.submit(autostop=True)
    vals = Counter(s.split(": ")[0].split("[")[0] for s in seen)
    assert vals == {"DistCoMap0": 8, "DistCoMap1": 8}
    assert sorted(int(s.split(": ")[1]) for s in seen if s.startswith("DistCoMap1")) == [
        v * 100 for v in range(2, 17, 2)
    ]
    assert [t.parallelism for t in env.pipeline] == [1, 1, 3, 2]
    assert [t.function_class.__name__ for t in env.pipeline] == [
        "NumberListSource",
        "NumberListSource",
        "DistributedCoMapProcessor",
        "DistributedSink",
    ]
    assert env.pipeline[1].basename == "NumberListSource_1"  # names made unique as SAGE Kernel does


def test_seed_resources_keywords_reach_the_engine():
    env = LocalEnvironment("plan", config={"node": {"name": "big", "cpus": 20, "gpus": 2, "memory": "64GB"}})
    (
        env.from_batch([1, 2, 3])
        .map(lambda x: x, parallelism=4, resources={"num_cpus": 4, "memory": "8GB"}, name="HeavyComputeOperator")
        .map(lambda x: x, parallelism=2, resources={"num_gpus": 1}, name="GPUInferenceOperator")
        .sink(lambda x: None)
    )
    plan = env.explain(as_json=True)
    ops = {o["name"]: o for o in plan["operators"]}
    assert ops["HeavyComputeOperator"]["parallelism"] == 4
    assert ops["HeavyComputeOperator"]["resources"]["num_cpus"] == 4
    assert ops["GPUInferenceOperator"]["resources"]["num_gpus"] == 1
    gpus = sorted(g for c in plan["chains"] for i in c["instances"] for g in (i["gpus"] or []))
    assert gpus == [0, 1]


@pytest.mark.parametrize("bad", [{"num_cpu": 4}, {"memory": "8 parsecs"}])
def test_misspelled_resource_key_raises_naming_it(bad):
    from sage.kernel.api import ResourceError

    env = LocalEnvironment("typo")
    with pytest.raises(ResourceError) as ei:
        env.from_batch([1]).map(lambda x: x, resources=bad, name="m")
    msg = str(ei.value)
    assert '"m"' in msg
    if "num_cpu" in bad:
        assert '"num_cpu"' in msg and "num_cpus" in msg  # the key, and the suggestion


def test_infeasible_raises_before_any_user_code():
    ran = []

    class Touch(BaseFunction):
        def __init__(self):
            super().__init__()
            ran.append("built")

        def execute(self, x):
            ran.append(x)
            return x

    env = LocalEnvironment("too_big", config={"node": {"cpus": 2, "gpus": 0, "memory": "4GB"}})
    env.from_batch([1, 2]).map(Touch, parallelism=2, resources={"num_cpus": 2}).map(
        Touch, resources={"num_gpus": 1}, name="gpu").sink(Touch)
    with pytest.raises(InfeasibleError) as ei:
        env.submit(autostop=True)
    assert ran == []
    assert 'operator "Touch"' in str(ei.value) and 'operator "gpu"' in str(ei.value)
    assert ei.value.code_name == "SAGE_EINFEASIBLE"


def python_blocks(path: Path, after: str = "") -> list[str]:
    text = path.read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text[text.index(after):] if after else text, re.S)


@pytest.mark.parametrize("doc,after", [("README.md", "## Python"), ("docs/python.md", "")])
def test_the_first_python_example_of_the_docs_runs(doc, after, tmp_path):
    code = python_blocks(EXAMPLES.parents[1] / doc, after)[0]
    script = tmp_path / "example.py"
    script.write_text(code)
    r = subprocess.run([PYTHON, str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(re.findall(r"DistMapper\[\d\]: \d+", r.stdout)) == 30
    assert sorted(int(v) for v in re.findall(r"SINK(?:\[\d\])?:? (\d+)", r.stdout)) == list(range(3, 31, 3))
