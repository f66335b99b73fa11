"""models.attention: the 1-pass cascade's key chunk keeps the array busy at any token count."""

from __future__ import annotations

import pytest

from models.attention import bind_variant, key_chunk


def _passes(tokens: int, p0: int, width: int) -> int:
    """Array passes of ceil(tokens/p0) chunks of p0 keys, the last partial."""
    n = -(-tokens // p0)
    last = tokens - (n - 1) * p0
    return (n - 1) * -(-p0 // width) + -(-last // width)


@pytest.mark.parametrize("width", [16, 256])
def test_key_chunk_takes_the_fewest_passes_brute_force(width):
    for tokens in range(1, 1200):
        p0 = key_chunk(tokens, width)
        assert _passes(tokens, p0, width) == min(_passes(tokens, d, width) for d in range(1, tokens + 1))
        assert p0 == min(tokens, width)


@pytest.mark.parametrize("tokens, p0", [(197, 197), (1031, 256), (4096, 256), (1000, 256), (65, 65),
                                         (3072, 256), (1 << 20, 256), (1, 1)])
def test_key_chunk_never_collapses_for_primes(tokens, p0):
    """A prime token count used to give P0 = 1 (the largest divisor <= 256): one key per step."""
    assert key_chunk(tokens) == p0


def test_bind_variant_uses_key_chunk():
    b = bind_variant("softmax-1pass", tokens=1031, grid=(1, 1031), head_dim=64)
    assert b.ranks["P0"] == 256 and b.ranks["P"] == 1031
