"""The ``einarray`` command line."""

from __future__ import annotations

import argparse
import importlib
import sys

from einsum.errors import EinarrayError

from . import __version__
from .commands import COMMAND_MODULES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="einarray",
        description=(
            "Design and simulate attention accelerators. Write attention as a cascade of "
            "Einsums (YAML), check and evaluate it, map it onto a spatial array, simulate "
            "cycles/energy, and generate and verify RTL."
        ),
        epilog="Run 'einarray COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"einarray {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for modname in COMMAND_MODULES:
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:
                continue  # subcommand not built yet
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.handler(args)
    except EinarrayError as exc:
        print(f"einarray {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"einarray {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
