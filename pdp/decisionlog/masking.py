"""The masking a bundle's decision log rules (`decision_log` in its manifest) ask for."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pdp.bundle.manifest import LOG_ROOTS, LogRules

MASKED = "[masked]"
_SECRET_KEY = re.compile(
    r"passw|secret|token|api[-_]?key|authorization|cookie|credential|private[-_]?key|signature",
    re.I,
)
_SECRET_VALUE = re.compile(r"^\s*(?:bearer\s+\S|basic\s+\S|eyJ[\w-]+\.[\w-]+\.)", re.I)
# The same shapes inside free text: Cedar's error messages quote the values they reject.
_SECRET_IN_TEXT = re.compile(
    r"\b(?:bearer|basic)\s+[^\s\"'`,;{}\[\]]+|eyJ[\w-]+\.[\w-]+\.[\w-]*", re.I
)


class Masker:
    """Drops and masks fields of logged context and attributes; never mutates its input."""

    def __init__(self, rules: LogRules) -> None:
        self._mask = {root: [p[1:] for p in rules.mask if p[0] == root] for root in LOG_ROOTS}
        self._drop = {root: [p[1:] for p in rules.drop if p[0] == root] for root in LOG_ROOTS}
        self._secrets = rules.mask_secrets

    def apply(self, root: str, value: Any) -> Any:
        """A masked copy of `value`, the logged object under `root` (context or attrs)."""
        return self._walk(value, self._mask[root], self._drop[root])

    def scrub(self, text: str) -> str:
        """`text` with credential-shaped parts (`Bearer ...`, a JWT) masked, unless turned off."""
        return _SECRET_IN_TEXT.sub(MASKED, text) if self._secrets else text

    def _walk(self, value: Any, mask: list[tuple[str, ...]], drop: list[tuple[str, ...]]) -> Any:
        if isinstance(value, Mapping):
            mask, drop = _expand(mask), _expand(drop)
            out: dict[str, Any] = {}
            for key, item in value.items():
                key = str(key)
                drop_here, drop_below = _step(drop, key)
                if drop_here:
                    continue
                mask_here, mask_below = _step(mask, key)
                if mask_here or (self._secrets and _SECRET_KEY.search(key)):
                    out[key] = MASKED
                else:
                    out[key] = self._walk(item, mask_below, drop_below)
            return out
        if isinstance(value, list | tuple):
            return [self._walk(item, mask, drop) for item in value]
        if isinstance(value, str) and self._secrets and _SECRET_VALUE.match(value):
            return MASKED
        return value


def _expand(patterns: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Patterns applying at this level: a leading `**` also matches zero levels."""
    out: list[tuple[str, ...]] = []
    pending = list(patterns)
    while pending:
        pattern = pending.pop()
        out.append(pattern)
        if pattern and pattern[0] == "**" and len(pattern) > 1:
            pending.append(pattern[1:])
    return out


def _step(patterns: list[tuple[str, ...]], key: str) -> tuple[bool, list[tuple[str, ...]]]:
    """Whether `key` itself is targeted, and the patterns for its children."""
    here = False
    below: list[tuple[str, ...]] = []
    for pattern in patterns:
        head = pattern[0]
        if head == "**":
            below.append(pattern)  # one more level, still anything below
        elif head in ("*", key):
            if len(pattern) == 1:
                here = True
            else:
                below.append(pattern[1:])
    return here, below
