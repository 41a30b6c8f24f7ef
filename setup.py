"""pip install --no-build-isolation .  - the sage Python package, its extension compiled with the engine's sources.

The extension (sage._sage) is the C binding (python/src) and the engine's eight layers (src/util .. src/api), linked
into one module: nothing but libjansson is needed at run time. The same package is built by CMake into build/python
(`make build`). Build files go to build-pip/, not into the source tree.
"""

import glob
import os
import re

from setuptools import Extension, find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
os.chdir(HERE)

LAYERS = ["util", "net", "resources", "graph", "plan", "runtime", "backend", "api"]  # src/CMakeLists.txt's order


def version() -> str:
    with open("CMakeLists.txt", encoding="utf-8") as f:
        m = re.search(r"project\(sage VERSION ([0-9.]+)", f.read())
    return m.group(1) if m else "0.0.0"


VERSION = version()
os.makedirs("build-pip", exist_ok=True)

engine = [f for layer in LAYERS for f in sorted(glob.glob(f"src/{layer}/*.c"))]
binding = sorted(glob.glob("python/src/*.c"))

ext = Extension(
    "sage._sage",
    sources=binding + engine,
    include_dirs=["include", "src"],
    # Without SAGE_BUILDING_LIBRARY the engine's sage_* functions are not exported: only PyInit__sage leaves it.
    define_macros=[("_GNU_SOURCE", None), ("SAGE_VERSION_STRING", f'"{VERSION}"')],
    extra_compile_args=["-std=c11", "-fvisibility=hidden", "-fno-semantic-interposition", "-Wno-unused-parameter",
                        "-Wno-missing-field-initializers"],
    extra_link_args=["-pthread"],
    libraries=["jansson", "m"],
)

setup(
    name="sage",
    version=VERSION,
    description="SAGE Kernel's Python API over the SAGE streaming dataflow engine (C)",
    long_description=open("docs/python.md", encoding="utf-8").read() if os.path.exists("docs/python.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    package_dir={"": "python"},
    packages=find_packages("python", include=["sage", "sage.*"]),
    package_data={"sage": ["py.typed"]},
    ext_modules=[ext],
    options={"build": {"build_base": "build-pip"}, "egg_info": {"egg_base": "build-pip"}},
    zip_safe=False,
)
