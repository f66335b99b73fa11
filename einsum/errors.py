"""Error types shared by every einarray package.

Every mistake in user input is reported as one :class:`ConfigError` that names the
file, the line and the YAML path, e.g.::

    vit.yaml:14 mapping.QK.loop_order[2]: 'q' is not a rank of QK (ranks: m, p, e)

The CLI prints ``str(err)`` and exits with status 2; it never shows a traceback for
user input.
"""

from __future__ import annotations

from dataclasses import dataclass


def format_ypath(path: tuple[str | int, ...]) -> str:
    """Render a YAML path tuple as ``a.b[2].c``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class EinarrayError(Exception):
    """Base class of every error einarray raises on purpose."""


class EinarrayWarning(UserWarning):
    """A choice einarray made for the user that changes results (a default unit that is
    slower than the one asked for by convention, a fallback mapping): ``warnings.warn``
    with this category; the CLI prints it as one line ``einarray CMD: warning: ...``."""


@dataclass(eq=False)
class ConfigError(EinarrayError):
    """A user-input error located in a file, at a line, under a YAML path."""

    message: str
    file: str | None = None
    line: int | None = None
    ypath: tuple[str | int, ...] = ()

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        loc = ""
        if self.file is not None:
            loc = self.file if self.line is None else f"{self.file}:{self.line}"
        yp = format_ypath(self.ypath)
        if loc and yp:
            return f"{loc} {yp}: {self.message}"
        if loc or yp:
            return f"{loc or yp}: {self.message}"
        return self.message


class NumericError(EinarrayError, ValueError):
    """Invalid numeric input to a golden model (NaN, inf, width out of range)."""
