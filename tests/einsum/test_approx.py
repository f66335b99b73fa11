"""Golden nonlinear models against float64, with stated bounds.

Bounds (see einsum/approx.py): GELU <= 1e-4 abs on [-8, 8] (default Q4.14, including input
quantization); exp relative <= 6e-5 + |x|*2.7e-6 plus 2**-17 abs; softmax <= 2**-10 abs
per probability for rows of 8..1024 scores in [-16, 16].
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from einsum import approx as A
from einsum.errors import NumericError
from einsum.fixed import QFormat, quantize, to_float


def softmax64(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------------------- constants
def test_tables_and_rom_budget():
    assert A.LOG2E_INT == round(math.log2(math.e) * 2**17) == 189097
    assert len(A.EXP2_TABLE) == 65 and A.EXP2_TABLE[0] == 2**22 and A.EXP2_TABLE[-1] == 2**23
    co = np.array(A.GELU_COEFFS)
    w0, w1, w2 = A.GELU_COEFF_WIDTHS
    assert co[:, 0].min() >= 0 and co[:, 0].max() < 2**w0  # a0 unsigned
    assert -(2 ** (w1 - 1)) <= co[:, 1].min() and co[:, 1].max() < 2 ** (w1 - 1)
    assert -(2 ** (w2 - 1)) <= co[:, 2].min() and co[:, 2].max() < 2 ** (w2 - 1)
    assert A.GELU_ROM_BITS == A.GELU_SEGMENTS * (w0 + w1 + w2) == 1288
    assert A.GELU_ROM_BITS < 177 * 22  # Edge-MoE's delta ROM


def test_gelu_coefficients_fit_delta():
    """Every stored segment polynomial is within 1.2e-5 of delta(u) = u*Phi(-u) (float eval)."""
    co = np.array(A.GELU_COEFFS, dtype=np.float64) / 2**A.GELU_CFRAC
    t = np.linspace(0, 1, 257)
    for k, (a0, a1, a2) in enumerate(co):
        start, h = (k / 8, 1 / 8) if k < 16 else (2 + (k - 16) / 4, 1 / 4)
        u = start + t * h
        ref = u * 0.5 * np.vectorize(math.erfc)(u / math.sqrt(2))
        assert np.abs(a0 + a1 * t + a2 * t * t - ref).max() < 1.2e-5


# ----------------------------------------------------------------------------- exp
def test_exp2_frac_dense():
    f = np.arange(2**16)
    v = A.exp2_frac_int(f) / 2**22
    ref = np.exp2(f / 2**16)
    assert np.abs(v / ref - 1).max() < 3.0e-5
    with pytest.raises(NumericError):
        A.exp2_frac_int([2**16])


def test_exp_int_dense_relative_error():
    fin, fout = QFormat(24, 16), QFormat(40, 24)
    q = np.arange(-8 * 2**16, 10 * 2**16, 7)
    x = to_float(q, fin)
    y = to_float(A.exp_approx_int(q, fin, fout), fout)
    ref = np.exp(x)
    bound = (4e-5 + np.abs(x) * 2.7e-6) * ref + 2.0**-25
    assert np.all(np.abs(y - ref) <= bound)


def test_exp_float_wrapper_and_saturation():
    x = np.linspace(-8, 10, 101101).reshape(1001, 101)
    y = A.exp_approx(x)
    assert y.shape == x.shape
    ref = np.exp(x)
    assert np.all(np.abs(y - ref) <= (6e-5 + np.abs(x) * 2.7e-6) * ref + 2.0**-17 * (1 + ref))
    assert np.all(A.exp_approx(np.array([11.0, 127.0, 1e9])) == A.EXP_OUT_FMT.max_float)
    assert A.exp_approx(np.array([-40.0, -1e9])).tolist() == [0.0, 0.0]
    assert float(A.exp_approx(np.array(0.0))) == 1.0


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 50), elements=st.floats(-20, 10)))
def test_exp_random(x):
    y = A.exp_approx(x)
    ref = np.exp(x)
    assert np.all(np.abs(y - ref) <= (6e-5 + np.abs(x) * 2.7e-6) * ref + 2.0**-17 * (1 + ref))


# ----------------------------------------------------------------------------- gelu
def test_gelu_dense_sweep_default_format():
    x = np.linspace(-8, 8, 1_600_001)
    err = np.abs(A.gelu_approx(x) - A.gelu_exact(x))
    assert err.max() <= 1e-4
    assert err.mean() < 2e-5


@pytest.mark.parametrize(
    "fmt,bound",
    [(QFormat(18, 14), 4.5e-5), (QFormat(32, 22), 1.2e-5), (QFormat(20, 16), 2.0e-5), (QFormat(16, 12), 1.35e-4)],
)
def test_gelu_on_input_grid(fmt, bound):
    """Error at representable inputs: delta error (1.2e-5) + half an output LSB."""
    assert bound >= 1.2e-5 + fmt.lsb / 2 - 1e-12 or fmt.frac > 18
    lo, hi = max(fmt.min_int, -8 << fmt.frac), min(fmt.max_int, 8 << fmt.frac)
    q = np.arange(lo, hi + 1, max(1, (hi - lo) // 1_000_000))
    y = to_float(A.gelu_approx_int(q, fmt, fmt), fmt)
    assert np.abs(y - A.gelu_exact(to_float(q, fmt))).max() <= bound


def test_gelu_corner_values():
    f = A.GELU_FMT
    q = np.array([0, f.max_int, f.min_int, 1, -1])
    y = A.gelu_approx_int(q, f, f)
    assert y[0] == 0
    assert y[1] == f.max_int  # gelu(8 - lsb) ~ x
    assert y[2] == 0  # gelu(-8) ~ -5e-15
    # wide input, narrow output saturates
    wide, narrow = QFormat(32, 22), QFormat(12, 8)
    assert A.gelu_approx_int([100 << 22], wide, narrow)[0] == narrow.max_int


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=6), elements=st.floats(-8, 8)))
def test_gelu_random_shapes(x):
    y = A.gelu_approx(x)
    assert y.shape == x.shape
    assert np.all(np.abs(y - A.gelu_exact(x)) <= 1e-4)


# ----------------------------------------------------------------------------- softmax
@pytest.mark.parametrize("n", [8, 9, 64, 255, 1024])
def test_softmax_random_rows(n):
    rng = np.random.default_rng(n)
    rows = [
        rng.uniform(-16, 16, (16, n)),
        np.clip(rng.normal(0, 5, (16, n)), -16, 16),
        rng.uniform(-16, -15, (4, n)),  # very negative, nearly equal
    ]
    spike = rng.uniform(-16, 16, (4, n))
    spike[:, n // 2] = 16.0  # one dominant score
    rows.append(spike)
    for x in rows:
        p = A.softmax_approx(x)
        assert p.shape == x.shape
        assert np.abs(p - softmax64(x)).max() <= 2.0**-10


@pytest.mark.parametrize("value", [-16.0, 0.0, 3.3, 16.0])
@pytest.mark.parametrize("n", [1, 8, 1024])
def test_softmax_all_equal(value, n):
    p = A.softmax_approx(np.full((2, n), value))
    assert np.abs(p - 1.0 / n).max() <= 2.0**-14


@settings(max_examples=60, deadline=None)
@given(
    st.integers(8, 1024).flatmap(
        lambda n: hnp.arrays(np.float64, (2, n), elements=st.floats(-16, 16))
    )
)
def test_softmax_hypothesis(x):
    assert np.abs(A.softmax_approx(x) - softmax64(x)).max() <= 2.0**-10


def test_softmax_axis_and_int_model_consistency():
    rng = np.random.default_rng(1)
    x = rng.uniform(-16, 16, (3, 20, 5))
    p = A.softmax_approx(x, axis=1)
    ref = np.exp(x - x.max(axis=1, keepdims=True))
    ref /= ref.sum(axis=1, keepdims=True)
    assert np.abs(p - ref).max() <= 2.0**-10
    q = quantize(x[0].T, A.SOFTMAX_IN_FMT)
    pi = A.softmax_approx_int(q)
    assert np.array_equal(to_float(pi, A.SOFTMAX_OUT_FMT), p[0].T)


def test_softmax_state_and_reciprocal():
    q = quantize(np.array([[0.0, 0.0], [1.0, -2.0]]), A.SOFTMAX_IN_FMT)
    m, s = A.softmax_state_int(q, A.SOFTMAX_IN_FMT.frac)
    assert m[0] == 0 and s[0] == 2 << 22
    assert m[1] == 1  # floor(1*log2 e)
    assert abs(s[1] / 2**22 * 2.0 ** m[1] - (math.e + math.exp(-2))) < 1e-4 * math.e
    r, lead = A.softmax_recip_int(s)
    assert lead[0] == 23 and r[0] == 2**34 // 2**17


def test_softmax_errors():
    with pytest.raises(NumericError):
        A.softmax_approx(np.array([1.0, np.nan]))
    with pytest.raises(NumericError):
        A.softmax_approx(np.array([1.0, np.inf]))
    with pytest.raises(NumericError, match="max_len"):
        A.softmax_approx_int(np.zeros((1, 9), dtype=np.int64), max_len=8)
    with pytest.raises(NumericError, match="out of range"):
        A.softmax_approx_int(np.array([[1 << 20]]))
    with pytest.raises(NumericError):
        A.softmax_approx(np.float64(1.0))
    with pytest.raises(NumericError, match="fraction bits"):
        A.softmax_approx_int(np.zeros((1, 2), dtype=np.int64), out_fmt=QFormat(40, 31))
    assert A.softmax_approx(np.zeros((3, 0))).shape == (3, 0)


def test_model_errors():
    with pytest.raises(NumericError):
        A.gelu_approx(np.array([np.nan]))
    with pytest.raises(NumericError):
        A.exp_approx(np.array([-np.inf]))
    with pytest.raises(NumericError, match="exceeds"):
        A.gelu_approx_int([0], QFormat(48, 20), QFormat(16, 8))
    with pytest.raises(NumericError, match="out of range"):
        A.gelu_approx_int([1 << 17], QFormat(18, 14), QFormat(18, 14))
    with pytest.raises(NumericError, match="integer"):
        A.exp_approx_int(np.array([0.5]))
    with pytest.raises(NumericError):
        A.gelu_approx_int([0], (18, 14))  # type: ignore[arg-type]
