"""float32 work with subnormals flushed to zero on the computing threads (rnnsym.numeric.fp_mode),
and the caller's own floating-point mode given back after every call."""
import numpy as np
import pytest

import rnnsym as rs
from rnnsym.numeric import batch_split, native
from rnnsym.numeric.fp_mode import flush_denormals
from rnnsym.numeric.gradcheck import random_point
from rnnsym.numeric.printer import _kernels

TINY = np.float32(1e-40)  # a float32 subnormal
def _can_flush() -> bool:
    if _kernels is None:
        return False
    mode = _kernels.flush_denormals()
    if mode != -1:
        _kernels.restore_fp_mode(mode)
    return mode != -1


flushing = pytest.mark.skipif(not _can_flush(), reason="no C extension, or not x86-64: the mode is left as it is")


def _subnormals_kept() -> bool:
    return TINY * np.float32(1.0) != 0


@flushing
def test_float32_work_flushes_and_gives_the_mode_back():
    assert _subnormals_kept()
    with flush_denormals(np.float32):
        assert not _subnormals_kept()
    assert _subnormals_kept()
    with pytest.raises(ZeroDivisionError), flush_denormals("float32"):
        1 / 0  # an error inside: the mode is given back all the same
    assert _subnormals_kept()


def test_float64_work_keeps_subnormals():
    with flush_denormals(np.float64):
        assert _subnormals_kept() and np.float64(1e-310) * 1.0 != 0


@pytest.mark.parametrize("how", ["one call", "parts of the batch", "sweeps"])
def test_a_float32_call_leaves_the_callers_mode_alone(how, monkeypatch):
    if how == "parts of the batch":
        monkeypatch.setattr(batch_split, "MIN_ROWS", 1)
        monkeypatch.setattr(batch_split, "MIN_STEPS_ROWS", 1)
        monkeypatch.setattr(batch_split, "cores", lambda: 2)
    if how == "sweeps":
        monkeypatch.setattr(native, "MIN_BLOCK_WORK", 1)
    net = rs.elman_rnn(steps=6, input_size=1, hidden_size=1 if how == "sweeps" else 3)
    params, x, y = random_point(net, batch=40, seed=1)
    f = net.compile(form="loop")
    f.value_and_grad({k: np.float32(v) for k, v in params.items()}, x.astype(np.float32), y)
    f.loss({k: np.float32(v) for k, v in params.items()}, x.astype(np.float32), y)
    assert _subnormals_kept()


def test_vanishing_float32_gradients_agree_with_float64():
    # Over 120 steps of a contractive Elman the earliest steps' adjoints fall below float32's normal
    # range; flushed, the gradients still agree with float64's to float32 precision.
    net = rs.elman_rnn(steps=120, input_size=2, hidden_size=8)
    params, x, y = random_point(net, batch=70, seed=3)
    params = {k: 0.3 * np.asarray(v) for k, v in params.items()}
    f = net.compile()
    _, g64 = f.value_and_grad(params, x, y)
    _, g32 = f.value_and_grad({k: np.float32(v) for k, v in params.items()}, x.astype(np.float32), y)
    for k in g64:
        scale = np.abs(g64[k]).max()
        assert g32[k].dtype == np.float32
        np.testing.assert_allclose(g32[k], g64[k], atol=1e-5 * max(scale, 1e-30), rtol=1e-4, err_msg=k)
