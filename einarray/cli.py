"""The ``einarray`` command line."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shlex
import sys
import warnings

from einsum.errors import EinarrayError, EinarrayWarning

from . import __version__
from .commands import COMMAND_MODULES, COMMANDS


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser. With ``command`` (a command name) only the module that registers
    it is imported, so one command starts without the others' imports; otherwise (no
    command, an option or an unknown name: help and errors list them all) every command."""
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
    mods = [COMMANDS[command]] if command in COMMANDS else [] if command == "--version" else COMMAND_MODULES
    for modname in mods:
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:
                continue  # subcommand not built yet
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["einarray", *argv])  # recorded in output directories' manifests
    with warnings.catch_warnings():  # restored on return (main may be called many times in one process)
        # every distinct einarray warning once per command, whatever earlier calls showed
        warnings.simplefilter("always", EinarrayWarning)
        warnings.showwarning = _warning_printer(args.command)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        status = args.handler(args)
    except EinarrayError as exc:
        print(f"einarray {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of stdout went away (| head): stop quietly
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # an input or output the OS refused: no space, permission, not a directory
        print(f"einarray {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"einarray {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


def describe_os_error(exc: OSError) -> str:
    """``PATH: reason`` (``PATH -> PATH2: reason`` for a rename) for an OSError."""
    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return reason
    path = os.fsdecode(exc.filename)
    if exc.filename2 is not None:
        path += f" -> {os.fsdecode(exc.filename2)}"
    return f"{path}: {reason}"


_SHOW_WARNING = warnings.showwarning


def _warning_printer(command: str):
    """``warnings.showwarning`` printing an :class:`EinarrayWarning` as one line
    ``einarray COMMAND: warning: ...`` on stderr (other warnings as Python shows them)."""
    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, EinarrayWarning):
            text = str(message)
            if text not in shown:  # the same fallback seen while deriving or searching: once
                shown.add(text)
                print(f"einarray {command}: warning: {text}", file=sys.stderr)
        else:
            _SHOW_WARNING(message, category, filename, lineno, file, line)
    return show


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
