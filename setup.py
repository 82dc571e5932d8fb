"""The one compiled part of rnnsym: vectorised activations (rnnsym/numeric/_kernels.c).

It is optional: where it cannot be built (no C compiler, another compiler), the install goes on
and rnnsym computes the same activations with NumPy. Everything else is in pyproject.toml.
"""
import sys

from setuptools import Extension, setup

# GCC and Clang only: -ffast-math (in this file's compilation, not its link) lets the loops call
# glibc's vector math library. Elsewhere the extension is built without it, still correct.
fast = [] if sys.platform == "win32" else ["-O3", "-ffast-math"]

setup(ext_modules=[Extension("rnnsym.numeric._kernels", ["rnnsym/numeric/_kernels.c"],
                             extra_compile_args=fast, libraries=[] if sys.platform == "win32" else ["m"],
                             optional=True)])
