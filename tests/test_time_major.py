"""x copied time-major and checked finite in one pass (rnnsym.numeric.time_major), against NumPy's
moveaxis and isfinite, over shapes, precisions, row blocks and layouts (Hypothesis): the C's 8 × 8
register tiles and their streaming stores (AVX-512, one value a step, an aligned output), its
plain tiles, and the NumPy fallback; and the clear error each compiled form gives for a bad x."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import rnnsym as rs
from rnnsym.errors import RnnsymError
from rnnsym.numeric import native
from rnnsym.numeric.gradcheck import random_point
from rnnsym.numeric.loop import _time_major
from rnnsym.numeric.workspace import _aligned


@pytest.fixture(scope="module")
def library():
    if not native.enabled():
        pytest.skip("no compiled kernels here")
    lib = rs.elman_rnn(steps=3, input_size=2, hidden_size=3).compile()._namespace["_native"]
    if lib is None:
        pytest.skip("no C compiler here")
    return lib


@settings(max_examples=120, deadline=None)
@given(B=st.integers(1, 70), T=st.integers(1, 40), inner=st.sampled_from([(), (1,), (3,)]),
       single=st.booleans(), aligned=st.booleans(), native_copy=st.booleans(),
       bad=st.sampled_from([None, np.nan, np.inf, -np.inf]), where=st.integers(0, 10**6), seed=st.integers(0, 99))
def test_copy_and_check_match_numpy(library, B, T, inner, single, aligned, native_copy, bad, where, seed):
    dtype = np.dtype(np.float32 if single else np.float64)
    x = np.random.default_rng(seed).normal(size=(B, T, *inner)).astype(dtype)
    if bad is not None:
        x.reshape(-1)[where % x.size] = bad
    shape = (T, B, *inner)
    out = _aligned(shape, dtype) if aligned else np.empty(int(np.prod(shape)) + 1, dtype)[1:].reshape(shape)
    if bad is None:
        _time_major(out, x, library if native_copy else None)
        np.testing.assert_array_equal(out, np.moveaxis(x, 1, 0))
    else:
        with pytest.raises(RnnsymError, match="x contains NaN or infinite values"):
            _time_major(out, x, library if native_copy else None)


def test_large_scalar_x_in_row_blocks(library):
    """The scalar Elman's shape of x: row blocks on the cores, the register tiles, rows and steps
    left over (10 003 rows, 1 001 steps), and one infinity in the last tile."""
    x = np.random.default_rng(1).normal(size=(10_003, 1_001))
    out = _aligned((1_001, 10_003), x.dtype)
    _time_major(out, x, library)
    np.testing.assert_array_equal(out, x.T)
    x[10_002, 1_000] = np.inf
    with pytest.raises(RnnsymError, match="x contains NaN"):
        _time_major(out, x, library)


@pytest.mark.parametrize("form", ["loop", "unrolled"])
def test_a_bad_x_is_refused_by_every_entry_point(form):
    f = rs.elman_rnn(steps=5, input_size=1, hidden_size=1).compile(form=form)
    params, x, y = random_point(f.network, batch=40)
    x[31, 4] = np.nan
    for call in (lambda: f.value_and_grad(params, x, y), lambda: f.loss(params, x, y), lambda: f.forward(params, x)):
        with pytest.raises(RnnsymError, match="x contains NaN or infinite values"):
            call()
