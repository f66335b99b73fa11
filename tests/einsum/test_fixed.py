"""Tests of einsum.fixed against exact float64 arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from einsum.errors import NumericError
from einsum.fixed import QFormat, check_range, quantize, saturate, shift_right, to_float


@pytest.mark.parametrize("width,frac", [(2, 0), (2, 1), (16, 12), (32, 22), (64, 63), (64, 0)])
def test_qformat_limits(width, frac):
    f = QFormat(width, frac)
    assert f.min_int == -(2 ** (width - 1))
    assert f.max_int == 2 ** (width - 1) - 1
    assert f.lsb == 2.0**-frac
    assert f.int_bits == width - frac
    assert str(f) == f"Q{width - frac}.{frac}"


@pytest.mark.parametrize(
    "width,frac", [(1, 0), (65, 10), (0, 0), (16, 16), (16, -1), (8.0, 2), (True, 0), (8, "3")]
)
def test_qformat_rejects_bad_parameters(width, frac):
    with pytest.raises(NumericError):
        QFormat(width, frac)


def test_qformat_is_frozen_and_hashable():
    f = QFormat(16, 8)
    with pytest.raises(Exception):
        f.width = 3  # type: ignore[misc]
    assert {f: 1}[QFormat(16, 8)] == 1


def test_quantize_rounding_modes():
    f = QFormat(8, 1)  # lsb 0.5
    x = np.array([0.25, 0.75, -0.25, -0.75, 0.3, -0.3, 1.25])
    assert quantize(x, f).tolist() == [0, 2, 0, -2, 1, -1, 2]  # ties to even
    assert quantize(x, f, rounding="nearest_up").tolist() == [1, 2, 0, -1, 1, -1, 3]
    assert quantize(x, f, rounding="truncate").tolist() == [0, 1, -1, -2, 0, -1, 2]
    assert quantize(x, f, rounding="floor").tolist() == quantize(x, f, rounding="truncate").tolist()


def test_quantize_saturates_or_raises():
    f = QFormat(8, 4)  # [-8, 7.9375]
    assert quantize([100.0, -100.0, 7.97], f).tolist() == [127, -128, 127]
    with pytest.raises(NumericError, match="out of range"):
        quantize([8.0], f, saturate=False)
    assert quantize([7.9375, -8.0], f, saturate=False).tolist() == [127, -128]


def test_quantize_64_bit_saturation():
    f = QFormat(64, 0)
    assert quantize([1e30, -1e30], f).tolist() == [f.max_int, f.min_int]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_quantize_rejects_nan_inf(bad):
    with pytest.raises(NumericError):
        quantize(np.array([1.0, bad]), QFormat(16, 8))


def test_bad_rounding_and_format():
    with pytest.raises(NumericError, match="rounding"):
        quantize([1.0], QFormat(16, 8), rounding="stochastic")
    with pytest.raises(NumericError, match="QFormat"):
        quantize([1.0], (16, 8))  # type: ignore[arg-type]


def test_to_float_and_range_check():
    f = QFormat(16, 12)
    assert to_float([4096, -32768, 32767], f).tolist() == [1.0, -8.0, 32767 / 4096]
    with pytest.raises(NumericError, match="out of range"):
        to_float([32768], f)
    with pytest.raises(NumericError, match="integer"):
        to_float([1.5], f)
    with pytest.raises(NumericError):
        check_range(np.array([np.nan]), f)
    assert saturate([40000, -40000, 5], f).tolist() == [32767, -32768, 5]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=2, max_value=53),
    st.data(),
)
def test_quantize_error_bound(width, data):
    """|to_float(quantize(x)) - x| <= lsb/2 (nearest) or < lsb (truncate) inside the range."""
    frac = data.draw(st.integers(min_value=0, max_value=width - 1))
    f = QFormat(width, frac)
    x = data.draw(st.floats(min_value=f.min_float, max_value=f.max_float, allow_nan=False))
    for mode, bound in (("nearest_even", f.lsb / 2), ("nearest_up", f.lsb / 2), ("truncate", f.lsb)):
        q = quantize(np.array([x]), f, rounding=mode)
        y = to_float(q, f)[0]
        err = abs(y - x)
        assert err <= bound
        if mode == "truncate":
            assert y <= x


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(2**40), max_value=2**40), st.integers(min_value=0, max_value=45))
def test_shift_right_matches_exact_rounding(v, n):
    exact = v / 2.0**n
    assert shift_right([v], [n], "truncate")[0] == np.floor(exact)
    assert shift_right([v], [n], "nearest_up")[0] == np.floor(exact + 0.5)
    assert shift_right([v], [n], "nearest_even")[0] == np.rint(exact)


def test_shift_right_rejects_negative():
    with pytest.raises(NumericError):
        shift_right([4], [-1])
