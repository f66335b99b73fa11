"""models.attention: the 1-pass cascade's key chunk keeps the array busy at any token count."""

from __future__ import annotations

from fractions import Fraction

import pytest

from models.attention import bind_variant, key_chunk


def _occupancy(d: int, width: int) -> Fraction:
    return Fraction(d, width * -(-d // width))


@pytest.mark.parametrize("width", [16, 256])
def test_key_chunk_is_the_busiest_divisor_brute_force(width):
    for tokens in range(1, 1200):
        p0 = key_chunk(tokens, width)
        assert tokens % p0 == 0
        best = max(_occupancy(d, width) for d in range(1, tokens + 1) if tokens % d == 0)
        assert _occupancy(p0, width) == best, tokens
        assert p0 == min(d for d in range(1, tokens + 1) if tokens % d == 0 and _occupancy(d, width) == best)


@pytest.mark.parametrize("tokens, p0", [(197, 197), (1031, 1031), (4096, 256), (1000, 250), (65, 65),
                                         (3072, 256), (1 << 20, 256)])
def test_key_chunk_never_collapses_for_primes(tokens, p0):
    """A prime token count used to give P0 = 1 (the largest divisor <= 256): one key per step."""
    assert key_chunk(tokens) == p0


def test_bind_variant_uses_key_chunk():
    b = bind_variant("softmax-1pass", tokens=1031, grid=(1, 1031), head_dim=64)
    assert b.ranks["P0"] == 1031 and b.ranks["P"] == 1031
