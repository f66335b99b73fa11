"""einsum.memo.WarningMemo: kept results, their warnings shown again on every hit, errors
not kept, the least recently used evicted first."""

from __future__ import annotations

import warnings

import pytest

from einsum.memo import WarningMemo


def test_a_hit_returns_the_kept_result_and_shows_its_warnings_again():
    m, calls = WarningMemo(4), []

    def compute():
        calls.append(1)
        warnings.warn("careful", UserWarning)
        return object()

    with pytest.warns(UserWarning, match="careful"):
        a = m.get("k", compute)
    with pytest.warns(UserWarning, match="careful"):
        b = m.get("k", compute)
    assert a is b and calls == [1]
    with pytest.warns(UserWarning):
        c = m.get(None, compute)  # None: computed, not kept
    assert c is not a and calls == [1, 1] and len(m) == 1


def test_an_error_is_not_kept_and_the_oldest_goes_first():
    m = WarningMemo(2)
    with pytest.raises(ZeroDivisionError):
        m.get("bad", lambda: 1 // 0)
    assert len(m) == 0
    m.get("a", lambda: 1)
    m.get("b", lambda: 2)
    m.get("a", lambda: 0)  # a hit: a is now the most recent
    m.get("c", lambda: 3)  # evicts b
    assert m.get("a", lambda: -1) == 1 and m.get("b", lambda: -2) == -2
