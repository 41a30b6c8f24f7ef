#!/usr/bin/env python3
"""bench/python_bench.py - the Python part of `make bench`: the sage package against plain Python on this machine.

  (p1) Python COST: a map -> filter -> sink pipeline in a LocalEnvironment against a plain Python loop calling the
       same three functions (target: at least 0.5x the loop, and over 1 M records/s).
  (p2) Through a JobManager: a CPU-bound Python map with 2 worker processes against 1 (the GIL does not bind
       worker processes), and the same pipeline in threads of one process (where it does).
  (p3) Records between processes: encoding + decoding cost per record by type (pickle protocol 5, or the short
       path for int/str/bytes/float/None), and a pipeline whose every record crosses a process boundary.

Figures are printed with their targets and ratios, never asserted: a shared VM moves them between runs.
Usage: python_bench.py [--quick] [--build DIR]     (DIR: the CMake build whose python/ and cli/sage to use)
Internal: python_bench.py --remote-job PORT PARALLELISM N WORK  (what the JobManager relaunches per worker)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def setup_path(build: str) -> None:
    sys.path.insert(0, os.path.join(build, "python"))


def work(x: int, n: int) -> int:
    """CPU-bound Python per record: n multiply-adds."""
    acc = x
    for i in range(n):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return acc


# ---------------------------------------------------------------- the job a JobManager relaunches (p2, p3)
def remote_job(port: int, parallelism: int, n: int, w: int) -> None:
    from sage.common.core.functions import SinkFunction
    from sage.kernel.api import RemoteEnvironment

    class Count(SinkFunction):
        def execute(self, x):
            pass

    env = RemoteEnvironment(f"pybench_p{parallelism}_w{w}", port=port)
    (env.from_batch(range(n))
        .map(lambda x: work(x, w), parallelism=parallelism)
        .sink(Count))
    t = time.perf_counter()
    env.submit(autostop=True)  # a worker runs its task here and exits
    print(f"elapsed {time.perf_counter() - t:.6f}")


def local_job(parallelism: int, n: int, w: int) -> float:
    from sage.common.core.functions import SinkFunction
    from sage.kernel.api import LocalEnvironment

    class Count(SinkFunction):
        def execute(self, x):
            pass

    env = LocalEnvironment(f"pybench_local_p{parallelism}")
    env.from_batch(range(n)).map(lambda x: work(x, w), parallelism=parallelism).sink(Count)
    t = time.perf_counter()
    env.execute()
    d = time.perf_counter() - t
    env.close()
    return d


# ---------------------------------------------------------------- p1
def p1(n: int, rounds: int) -> dict:
    from sage.common.core.functions import SinkFunction
    from sage.kernel.api import LocalEnvironment

    class Sink(SinkFunction):
        count = 0

        def execute(self, x):
            Sink.count += 1

    def f(x):
        return x + 1

    def g(x):
        return x & 1 == 0

    def loop() -> float:
        s = Sink()
        t = time.perf_counter()
        for x in range(n):
            y = f(x)
            if g(y):
                s.execute(y)
        return time.perf_counter() - t

    def pipeline() -> float:
        env = LocalEnvironment("pybench_cost")
        env.from_batch(range(n)).map(f).filter(g).sink(Sink)
        t = time.perf_counter()
        env.execute()
        d = time.perf_counter() - t
        env.close()
        return d

    best_loop = min(loop() for _ in range(rounds))
    best_pipe = min(pipeline() for _ in range(rounds))
    return {"loop": n / best_loop, "pipeline": n / best_pipe, "ratio": best_loop / best_pipe}


# ---------------------------------------------------------------- JobManager
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JobManager:
    def __init__(self, cli: str) -> None:
        self.cli = cli
        self.home = tempfile.mkdtemp(prefix="sage-pybench-")
        self.env = dict(os.environ, SAGE_HOME=self.home)
        self.port = 0
        for _ in range(3):
            port = free_port()
            r = subprocess.run([cli, "jobmanager", "start", "--port", str(port), "--home", self.home],
                               env=self.env, capture_output=True, text=True, timeout=60)
            if r.returncode == 0:
                self.port = port
                return
        raise RuntimeError(f"the JobManager did not start: {r.stderr}")

    def job(self, parallelism: int, n: int, w: int) -> float:
        """Submit to end, measured by the client (worker processes start inside it)."""
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--remote-job", str(self.port),
                            str(parallelism), str(n), str(w)], env=self.env, capture_output=True, text=True,
                           timeout=600, cwd=HERE)
        if r.returncode != 0:
            raise RuntimeError(r.stdout + r.stderr)
        return float(r.stdout.split("elapsed")[-1])

    def stop(self) -> None:
        subprocess.run([self.cli, "jobmanager", "stop", "--port", str(self.port)], env=self.env,
                       capture_output=True, timeout=60)
        shutil.rmtree(self.home, ignore_errors=True)


def p2(jm: JobManager, n: int, w: int) -> dict:
    one = min(jm.job(1, n, w) for _ in range(2))
    two = min(jm.job(2, n, w) for _ in range(2))
    t1 = min(local_job(1, n, w) for _ in range(2))
    t2 = min(local_job(2, n, w) for _ in range(2))
    return {"remote1": n / one, "remote2": n / two, "speedup": one / two, "local1": n / t1, "local2": n / t2,
            "local_speedup": t1 / t2}


def p3(jm: JobManager, n: int) -> dict:
    from sage import _sage

    samples = {
        "int": 123456789,
        "str (100 B)": "x" * 100,
        "bytes (1 KiB)": b"\x01" * 1024,
        "dict (4 fields)": {"user": "u17", "n": 3, "score": 0.25, "tags": ["a", "b"]},
        "list (10 floats)": [float(i) for i in range(10)],
        "tuple (str, int)": ("word", 1),
    }
    per = {}
    reps = max(20_000, n // 10)
    for name, v in samples.items():
        enc, dec = _sage.encode_record, _sage.decode_record
        size = len(enc(v))
        t = time.perf_counter()
        for _ in range(reps):
            dec(enc(v))
        per[name] = ((time.perf_counter() - t) / reps * 1e9, size)
    # a pipeline whose every record crosses processes (w=0: no work) against the same in threads
    cross = jm.job(2, n, 0)
    local = local_job(2, n, 0)
    return {"per_record": per, "remote": n / cross, "local": n / local}


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "--remote-job":
        remote_job(*(int(a) for a in argv[2:6]))
        return 0
    quick = "--quick" in argv
    build = os.path.join(os.path.dirname(HERE), "build-release")
    if "--build" in argv:
        build = argv[argv.index("--build") + 1]
    build = os.path.abspath(build)
    setup_path(build)
    os.environ["PYTHONPATH"] = os.path.join(build, "python") + os.pathsep + os.environ.get("PYTHONPATH", "")
    cli = os.path.join(build, "cli", "sage")

    n1 = 200_000 if quick else 2_000_000
    print(f"\nPython (the sage package, {sys.executable} {sys.version.split()[0]}, build {build})")
    r = p1(n1, 2 if quick else 3)
    print(f"(p1) map -> filter -> sink, {n1} ints, LocalEnvironment (one chain, one thread)")
    print(f"     pipeline {r['pipeline'] / 1e6:6.2f} M rec/s   target >= 1 M rec/s")
    print(f"     plain loop {r['loop'] / 1e6:4.2f} M rec/s   ratio {r['ratio']:.2f}x   target >= 0.5x")

    if not os.access(cli, os.X_OK):
        print(f"(p2), (p3): skipped: {cli} is not built")
        return 0
    jm = JobManager(cli)
    try:
        n2, w = (20_000, 200) if quick else (100_000, 400)
        r = p2(jm, n2, w)
        print(f"(p2) map with {w} Python multiply-adds per record, {n2} records, submit to end")
        print(f"     JobManager, 1 worker : {r['remote1']:10.0f} rec/s")
        print(f"     JobManager, 2 workers: {r['remote2']:10.0f} rec/s   speedup {r['speedup']:.2f}x (2 cores)")
        print(f"     LocalEnvironment, 1 thread : {r['local1']:10.0f} rec/s")
        print(f"     LocalEnvironment, 2 threads: {r['local2']:10.0f} rec/s   speedup {r['local_speedup']:.2f}x "
              "(the GIL: threads do not add Python throughput)")
        n3 = 50_000 if quick else 500_000
        r = p3(jm, n3)
        print("(p3) records between processes: encode + decode per record")
        for name, (ns, size) in r["per_record"].items():
            print(f"     {name:<18} {ns:8.0f} ns  ({size} bytes on the wire)")
        print(f"     source -> map (2 workers) -> sink, every record between processes: {r['remote'] / 1e6:.2f} M rec/s "
              f"(submit to end, {n3} records); in threads of one process: {r['local'] / 1e6:.2f} M rec/s")
    finally:
        jm.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
