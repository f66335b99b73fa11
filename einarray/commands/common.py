"""Helpers shared by the CLI subcommands: rank and param override parsing."""

from __future__ import annotations

import argparse
import math

from einsum.errors import ConfigError


def add_override_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rank", "-r", action="append", default=[], metavar="NAME=SIZE",
                   help="override a rank size, e.g. --rank P=4096 (repeatable)")
    p.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                   help="override a param, e.g. --param scale=0.125 (repeatable)")


def parse_ranks(items: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for it in items:
        name, sep, val = it.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"--rank {it!r}: expected NAME=SIZE, e.g. --rank P=4096")
        try:
            n = int(val.strip())
        except ValueError:
            raise ConfigError(f"--rank {name}={val}: the size must be an integer >= 0") from None
        if n < 0:
            raise ConfigError(f"--rank {name}={val}: the size must be an integer >= 0")
        out[name] = n
    return out


def parse_params(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for it in items:
        name, sep, val = it.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"--param {it!r}: expected NAME=VALUE, e.g. --param scale=0.125")
        try:
            v = float(val.strip())
        except ValueError:
            raise ConfigError(f"--param {name}={val}: the value must be a number") from None
        if not math.isfinite(v):
            raise ConfigError(f"--param {name}={val}: the value must be finite")
        out[name] = int(v) if v.is_integer() and "." not in val and "e" not in val.lower() else v
    return out
