"""Build hook (metadata lives in pyproject.toml): the optional CPU kernel and the bundles as package data.

* ``medloss.backends.cpu._kernels`` is plain C (no torch headers), built by the system C compiler during
  ``pip install``. It is optional: without a compiler the install still succeeds and medloss uses its eager torch
  path (the same math, slower); ``python -c "import medloss.backends.cpu as n; print(n.available())"`` tells
  which is active.
* ``bundles/`` at the top of the repository is the one hand-kept copy of the MONAI bundles. The build maps it into
  the wheel as ``medloss/bundles/`` (``package_dir``), with only the files a bundle consists of (no training
  outputs, checkpoints or generated data that a run from the source tree may have left there), so
  ``medloss bundle init`` and ``medloss demo`` find them in an installed wheel.
"""
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup

COMPILE_ARGS = [] if sys.platform == "win32" else ["-O3", "-std=c99", "-fopenmp-simd", "-fno-math-errno",
                                                   "-fno-trapping-math", "-pthread"]
LINK_ARGS = [] if sys.platform == "win32" else ["-pthread", "-lm"] + (["-ldl"] if sys.platform.startswith("linux")
                                                                      else [])

#: what a bundle folder ships, relative to bundles/ (globs); everything else under bundles/ stays out of the wheel
BUNDLE_FILES = ("README.md", "schema/*.json", "*/LICENSE", "*/configs/*.json", "*/configs/*.conf", "*/docs/*.md",
                "*/models/README.md")


def _bundle_package_data() -> dict:
    """``{package: [file names]}`` for every folder of bundle files, as ``medloss.bundles[.<sub>.<folder>]``
    (setuptools wants each data folder declared as a package, else it warns that it would be ignored)."""
    root = Path(__file__).resolve().parent / "bundles"
    out: dict = {}
    for pattern in BUNDLE_FILES:
        for path in root.glob(pattern):
            if path.is_file():
                rel = path.relative_to(root)
                out.setdefault(".".join(("medloss", "bundles") + rel.parts[:-1]), []).append(rel.name)
    return {package: sorted(names) for package, names in sorted(out.items())}


BUNDLE_DATA = _bundle_package_data()

setup(
    packages=find_packages(include=["medloss", "medloss.*"]) + list(BUNDLE_DATA),
    package_dir={"medloss.bundles": "bundles"},
    package_data={"medloss": ["py.typed"], **BUNDLE_DATA},
    ext_modules=[
        Extension(
            "medloss.backends.cpu._kernels",
            sources=["medloss/backends/cpu/_kernels.c"],
            depends=["medloss/backends/cpu/_softmax_body.h", "medloss/backends/cpu/_sigmoid_body.h"],
            extra_compile_args=COMPILE_ARGS,
            extra_link_args=LINK_ARGS,
            optional=True,
        )
    ],
)
