"""Packaging: `cmake --install` puts the package into the interpreter's site directory under the prefix, and
`pip install --no-build-isolation .` builds it offline from the sources with Debian's setuptools."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import PYTHON

SOURCE = Path(os.environ.get("SAGE_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BUILD = os.environ.get("SAGE_BUILD_DIR")

PIPELINE = """
import sage
from sage.kernel.api import LocalEnvironment
out = []
env = LocalEnvironment("installed")
env.from_batch(range(10)).map(lambda x: x * 2, parallelism=2).filter(lambda x: x % 4 == 0).sink(out.append)
env.execute()
print(sage.__file__, sorted(out))
"""


def run_from(site: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(site))
    r = subprocess.run([PYTHON, "-c", PIPELINE], capture_output=True, text=True, timeout=120, env=env, cwd="/")
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_cmake_install_into_the_site_directory(tmp_path):
    if not BUILD:
        pytest.skip("SAGE_BUILD_DIR is not set (ctest sets it)")
    r = subprocess.run(["cmake", "--install", BUILD, "--prefix", str(tmp_path)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    kind = "dist-packages" if "deb_system" in sysconfig.get_scheme_names() else "site-packages"
    site = tmp_path / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / kind
    ext = list((site / "sage").glob("_sage*.so"))
    assert len(ext) == 1 and sysconfig.get_config_var("EXT_SUFFIX") in ext[0].name
    assert (site / "sage" / "kernel" / "api" / "local_environment.py").exists()
    assert (site / "sage" / "py.typed").exists()
    out = run_from(site)
    assert out.startswith(str(site)) and out.rstrip().endswith("[0, 4, 8, 12, 16]")


def test_pip_install_offline_without_build_isolation(tmp_path):
    if os.environ.get("SAGE_SANITIZE"):
        pytest.skip("pip builds without the sanitizer: checked in the normal build")
    if subprocess.run([PYTHON, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        pytest.skip("pip is not installed for this Python (scripts/deps.sh installs python3-pip)")
    src = tmp_path / "src"  # a copy: pip and setuptools write build files next to the sources
    src.mkdir()
    for f in ("setup.py", "pyproject.toml", "MANIFEST.in", "CMakeLists.txt", "README.md"):
        shutil.copy(SOURCE / f, src / f)
    for d in ("include", "src", "python"):
        shutil.copytree(SOURCE / d, src / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (src / "docs").mkdir()
    if (SOURCE / "docs" / "python.md").exists():
        shutil.copy(SOURCE / "docs" / "python.md", src / "docs" / "python.md")
    site = tmp_path / "site"
    r = subprocess.run([PYTHON, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index",
                        "--disable-pip-version-check", "--target", str(site), str(src)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ext = list((site / "sage").glob("_sage*.so"))
    assert len(ext) == 1
    exported = subprocess.run(["nm", "-D", "--defined-only", str(ext[0])], capture_output=True, text=True).stdout
    assert [line.split()[-1] for line in exported.splitlines() if line.strip()] == ["PyInit__sage"]
    out = run_from(site)
    assert out.rstrip().endswith("[0, 4, 8, 12, 16]")
