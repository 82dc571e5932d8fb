import os

# The torch backend computes CPU tensors with the NumPy lowering by default (rnnsym.backends.compiled);
# the tests run it with torch's own operations, the lowering every other device (CUDA) runs, which this
# machine can only test on its CPU. tests/test_torch_cpu_lowering.py tests the default against it.
os.environ.setdefault("RNNSYM_TORCH_CPU", "torch")

import pytest

import rnnsym as rs


@pytest.fixture(scope="session")
def seed4():
    """The article's network, T = 4, defaults (tanh, sigmoid, BCE)."""
    return rs.seed_rnn(steps=4)
