"""A bounded per-process memo for results whose computation may warn.

A cascade loaded again at the same shapes, or a default mapping derived again for an identical
layer, is reused rather than recomputed; but a reused result must not hide what computing it
said, so each hit shows the computation's warnings again (the same category, text and place).
Errors are not kept: a computation that raises raises again next time.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any, Callable, Hashable


class WarningMemo:
    """Results by key, at most ``size`` (the least recently used go first)."""

    def __init__(self, size: int):
        self.size = size
        self._kept: OrderedDict[Hashable, tuple[Any, list[warnings.WarningMessage]]] = OrderedDict()

    def get(self, key: Hashable | None, compute: Callable[[], Any]) -> Any:
        """``compute()``'s result, kept under ``key`` (None: not kept), with its warnings shown
        now and on every later hit."""
        if key is not None and key in self._kept:
            self._kept.move_to_end(key)
            result, caught = self._kept[key]
            _show(caught)
            return result
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = compute()
        _show(caught)
        if key is not None:
            self._kept[key] = (result, list(caught))
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return result

    def clear(self) -> None:
        self._kept.clear()

    def __len__(self) -> int:
        return len(self._kept)


def _show(caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


__all__ = ["WarningMemo"]
