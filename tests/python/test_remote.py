"""RemoteEnvironment through a real JobManager (`sage jobmanager start` on a free port, a private SAGE_HOME): the
program is relaunched as `python3 script.py args` per worker, records are pickled between the worker processes."""

from __future__ import annotations

import ast
import collections
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from sage import _sage
from sage.kernel.api import SageError, call_service
from conftest import PYTHON

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "python" / "examples"
JOB = str(HERE / "remote_job.py")


def outputs(outdir: str, prefix: str) -> list:
    got = []
    for f in sorted(os.listdir(outdir)):
        if f.startswith(prefix + "."):
            got += [ast.literal_eval(line) for line in Path(outdir, f).read_text().splitlines()]
    return got


def test_parallelism_validation_through_the_jobmanager(jobmanager):
    r = jobmanager.python(str(EXAMPLES / "parallelism_validation.py"), "--jobmanager", f"127.0.0.1:{jobmanager.port}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "REMOTE ENVIRONMENT - SINGLE STREAM PARALLELISM VALIDATION" in r.stdout
    rows = dict(((op, int(i)), (int(a), int(b))) for op, i, a, b in
                re.findall(r"^(\w+)\s+(\d+)\s+(\d+)\s+(\d+)$", r.stdout, re.M))
    assert rows[("NumberListSource", 0)] == (0, 30)
    assert sum(rows[("DistributedProcessor", i)][0] for i in range(4)) == 30
    assert sum(rows[("DistributedFilter", i)][1] for i in range(3)) == 10
    assert sum(rows[("DistributedSink", i)][0] for i in range(2)) == 10
    assert r.stdout.rstrip().endswith("job finished")
    job = jobmanager.run("job", "list")
    assert "parallelism_validation" in job.stdout and "finished" in job.stdout
    jid = re.findall(r"^(\d+)\s+parallelism_validation", job.stdout, re.M)[-1]
    logs = jobmanager.run("job", "logs", jid).stdout
    # the per-record lines were printed by the workers, each a process of its own
    pids = set(re.findall(r"DistMapper\[\d+@(\d+)\]", logs))
    assert len(pids) == 4
    assert sorted(int(v) for v in re.findall(r"SINK\[\d+@\d+\]: (\d+)", logs)) == list(range(3, 31, 3))


def test_keyed_wordcount_across_worker_processes(jobmanager, tmp_path):
    r = jobmanager.python(JOB, "wordcount", str(jobmanager.port), str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    counted = outputs(str(tmp_path), "counts")
    from remote_job import WORDS  # noqa: E402 - the same list the job used

    assert collections.Counter({w: n for w, n, _ in counted}) == collections.Counter(WORDS)
    assert len(counted) == len(set(WORDS))  # every word counted at exactly one instance
    assert len({pid for _, _, pid in counted}) >= 2  # by several worker processes


def test_exception_in_a_worker_fails_the_job_with_its_traceback(jobmanager, tmp_path):
    r = jobmanager.python(JOB, "fail", str(jobmanager.port), str(tmp_path))
    assert r.returncode == 1
    out = r.stdout
    assert re.search(r'FAILED JobFailedError: job \d+ failed: operator "Fragile" instance \d failed after \d+ records?: '
                     r"ZeroDivisionError: record 13 divides by zero", out), out
    assert "Traceback (most recent call last):" in out and "raise ZeroDivisionError" in out


def test_unpicklable_record_fails_clearly(jobmanager, tmp_path):
    r = jobmanager.python(JOB, "unpicklable", str(jobmanager.port), str(tmp_path))
    assert r.returncode == 1
    assert re.search(r'operator "Lock" instance 0 failed after 1 record: a record it emitted cannot be sent to another '
                     r"process: TypeError: cannot pickle '_thread.lock' object", r.stdout), r.stdout


def test_a_service_is_one_process_per_job(jobmanager, tmp_path):
    r = jobmanager.python(JOB, "service", str(jobmanager.port), str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    got = outputs(str(tmp_path), "out")
    assert sorted(v for v, _, _, _ in got) == [2 * x for x in range(1, 41)]
    service_pids, caller_pids = {s for _, s, _, _ in got}, {c for _, _, c, _ in got}
    assert len(service_pids) == 1, service_pids  # both map instances called the job's one Doubler
    assert len(caller_pids) == 2 and not service_pids & caller_pids  # in a process of its own
    assert {g for _, _, _, g in got} == {"0"}  # placed with its resources: one of the node's two GPUs


def test_a_script_and_the_cli_call_a_running_jobs_service(jobmanager, tmp_path):
    job = subprocess.Popen([PYTHON, JOB, "service_open", str(jobmanager.port), str(tmp_path)], env=jobmanager.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    token = os.path.join(jobmanager.home, "token")
    try:
        deadline, got, jid = time.monotonic() + 60, None, None
        while got is None and time.monotonic() < deadline:
            listed = re.findall(r"^(\d+)\s+py_service_open\s+running", jobmanager.run("job", "list").stdout, re.M)
            jid = int(listed[-1]) if listed else None
            try:
                got = jid and call_service(jid, "doubler", 21, port=jobmanager.port, token_file=token)
            except SageError as e:  # not yet: the job or its service is still starting
                assert "still starting" in str(e) or "no running job" in str(e) or "is pending" in str(e), e
                time.sleep(0.02)
        assert got is not None and got[0] == 42
        with pytest.raises(RuntimeError, match="service 'doubler' method 'invert' raised ZeroDivisionError"):
            call_service(jid, "doubler", 0, method="invert", port=jobmanager.port, token_file=token)
        r = jobmanager.run("service", "call", str(jid), "doubler", "--method", "process", "[5]")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)[:2] == [10, got[1]]  # the same one instance
        r = jobmanager.run("service", "call", str(jid), "doubler", "--method", "nosuch", "1")
        assert r.returncode == 1
        assert "service \"doubler\" method nosuch raised AttributeError" in r.stderr, r.stderr
    finally:
        (tmp_path / "go").touch()
        out, _ = job.communicate(timeout=120)
    assert job.returncode == 0, out


def test_a_feedback_loop_across_worker_processes(jobmanager, tmp_path):
    r = jobmanager.python(JOB, "loop", str(jobmanager.port), str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(outputs(str(tmp_path), "out")) == list(range(1, 41))  # each once, after its rounds


def test_an_infeasible_request_is_refused_at_submit(jobmanager, tmp_path):
    r = jobmanager.python(JOB, "infeasible", str(jobmanager.port), str(tmp_path))
    assert r.returncode == 1
    assert r.stdout.startswith("FAILED InfeasibleError: submitting to the JobManager"), r.stdout
    assert 'operator "heavy"' in r.stdout and 'operator "gpu"' in r.stdout, r.stdout
    assert os.listdir(tmp_path) == []  # no worker ran


def test_a_worker_that_builds_another_pipeline_is_refused(jobmanager, tmp_path):
    r = jobmanager.python(JOB, "drift", str(jobmanager.port), str(tmp_path))
    assert r.returncode == 1
    assert "differs from the submitted one (plan hash" in r.stdout, r.stdout


@pytest.mark.parametrize("value,path", [
    (0, "I"), (-1, "I"), (2**62, "I"), (2**80, "pickle"), ("", "S"), ("naïve ✓", "S"), ("\udc80", "pickle"),
    (b"\x00\xff", "B"), (1.5, "F"), (float("inf"), "F"), (None, "N"), (True, "C"),
    ({"user": "u17", "n": 3, "score": 0.25, "tags": ["a", "b"], "ok": False, "raw": b"x"}, "C"),
    ([1, "x", None, (2, (3,))], "C"), (("t", 1), "C"), ({(1, "a"): [1.0]}, "C"), ([], "C"), ({}, "C"),
    ([2**80], "pickle"), ({1, 2}, "pickle"), ([{1, 2}], "pickle"), ({"when": __import__("datetime").date(2026, 1, 1)},
                                                                     "pickle"),
])
def test_record_codec_round_trips(value, path):
    data = _sage.encode_record(value)
    back = _sage.decode_record(data)
    assert back == value and type(back) is type(value)
    if path == "pickle":
        assert data[:2] == b"\x80\x05"  # pickle protocol 5
    else:
        assert data[:1] == path.encode()  # a tag byte: no pickle


def test_record_codec_keeps_nesting_and_refuses_garbage():
    deep = []
    for _ in range(40):
        deep = [deep]
    assert _sage.decode_record(_sage.encode_record(deep)) == deep  # deeper than 32: pickle
    for bad in (b"", b"Q", b"C", b"CL\xff\xff\xff\xff", b"Cs\x05\x00\x00\x00ab", b"CNN", b"I\x01"):
        with pytest.raises(ValueError):
            _sage.decode_record(bad)


def test_key_bytes_are_the_same_in_every_process():
    """The canonical form of keys does not depend on PYTHONHASHSEED (Python's str hash does)."""
    import subprocess

    from conftest import PYTHON

    keys = ["user-1", 0, 17, -5, 2**70, 1.0, 2.5, b"raw", ("a", 1, (None, "b")), None, True]
    code = ("import sys; from sage import _sage; "
            f"print([_sage.key_bytes(k).hex() for k in {keys!r}]); print(hash('user-1'))")
    runs = [subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, PYTHONHASHSEED=str(seed))) for seed in (1, 2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert runs[0].stdout.splitlines()[0] == runs[1].stdout.splitlines()[0]
    assert runs[0].stdout.splitlines()[1] != runs[1].stdout.splitlines()[1]  # Python's own hash differs
    assert _sage.key_bytes(1) == _sage.key_bytes(1.0) == _sage.key_bytes(True)  # equal keys, equal bytes
    for k in keys:
        assert _sage.key_from_bytes(_sage.key_bytes(k)) == k
