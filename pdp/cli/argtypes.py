"""argparse value types: numbers refused outside their stated range, uids, addresses, modes."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from pdp.decisionlog import Sampling
from pdp.model import EntityRef, parse_action
from pdp.server import listen

# grpc takes message sizes as a C int; a bigger value is refused, never silently clamped.
GRPC_MAX_MESSAGE_BYTES = 2**31 - 1
MAX_COUNT = 2**31 - 1  # no protobuf message, hence no request, holds more of anything
DAY_SECONDS = 86_400.0
# Plain decimal numbers only: float() would also take "nan", "1_0" and non-ASCII digits.
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)

T = TypeVar("T")


def parsed(parse: Callable[[str], T], text: str) -> T:
    """`parse(text)` for an argparse type: its ValueError becomes the usage error, message kept
    (argparse puts `argument --flag:` in front)."""
    try:
        return parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def whole(low: int, high: int = MAX_COUNT) -> Callable[[str], int]:
    """A whole number in [low, high]; argparse names the flag in front of the message."""

    def parse(text: str) -> int:
        digits = text.removeprefix("-").removeprefix("+")
        value = int(text) if digits.isdigit() and digits.isascii() else None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {low} to {high}, not {text!r}"
            )
        return value

    parse.__name__ = "whole number"  # argparse shows it for a ValueError only; kept tidy
    return parse


def seconds(
    low: float, high: float = DAY_SECONDS, low_open: bool = False
) -> Callable[[str], float]:
    """A number of seconds in [low, high] (or (low, high] when `low_open`)."""
    return number(low, high, "a number of seconds", low_open)


def number(
    low: float, high: float, what: str = "a number", low_open: bool = False
) -> Callable[[str], float]:
    """A plain decimal number in [low, high] (or (low, high] when `low_open`); no nan or inf."""

    def parse(text: str) -> float:
        value = float(text) if _DECIMAL.fullmatch(text) else math.nan
        above_low = value > low if low_open else value >= low
        if not (math.isfinite(value) and above_low and value <= high):
            bound = f"more than {_number(low)}" if low_open else f"from {_number(low)}"
            raise argparse.ArgumentTypeError(
                f"must be {what} {bound} to {_number(high)}, not {text!r}"
            )
        return value

    parse.__name__ = what
    return parse


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def entity_uid(text: str) -> EntityRef:
    """An entity uid written as in Cedar: `User::"alice"`."""
    return parsed(EntityRef.parse, text)


def action(text: str) -> EntityRef:
    """An action: a bare name is `Action::"name"` (as in routes.yaml), `::` a whole uid."""
    return parsed(parse_action, text)


def octal_mode(text: str) -> int:
    """File permissions written in octal: `0660`."""
    octal = text.isascii() and text.isdigit() and "8" not in text and "9" not in text
    mode = int(text, 8) if octal else -1
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(f"must be an octal mode such as 0660, not {text}")
    return mode


def listen_address(text: str) -> str:
    """HOST:PORT, [IPv6]:PORT or unix:/path, checked for form (not yet bound)."""
    parsed(listen.parse, text)
    return text


def tcp_address(text: str) -> str:
    """HOST:PORT or [IPv6]:PORT, checked for form (not yet bound)."""
    parsed(partial(listen.parse, unix=False), text)
    return text


def sampling(text: str) -> Sampling:
    """Which decisions the decision log keeps: all, deny-only, or a rate of the allows."""
    return parsed(Sampling.parse, text)
