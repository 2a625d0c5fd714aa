"""Build hook for the optional CPU kernel ``medloss.functional._kernels`` (metadata lives in pyproject.toml).

The extension is plain C (no torch headers) and is built by the system C compiler during ``pip install``. It is
optional: without a compiler the install still succeeds and medloss uses its eager torch path (the same math,
slower); ``python -c "import medloss.functional.native as n; print(n.available())"`` tells which is active.
"""
import sys

from setuptools import Extension, setup

COMPILE_ARGS = [] if sys.platform == "win32" else ["-O3", "-std=c99", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math", "-pthread"]
LINK_ARGS = [] if sys.platform == "win32" else ["-pthread", "-lm"] + (["-ldl"] if sys.platform.startswith("linux") else [])

setup(
    ext_modules=[
        Extension(
            "medloss.functional._kernels",
            sources=["medloss/functional/_kernels.c"],
            depends=["medloss/functional/_softmax_body.h", "medloss/functional/_sigmoid_body.h"],
            extra_compile_args=COMPILE_ARGS,
            extra_link_args=LINK_ARGS,
            optional=True,
        )
    ]
)
