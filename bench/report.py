"""The one table: rows with raw figures, ratios against the same run's floors, and the targets."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One line of the table. Raw figures are per decision; ratios are filled in at the end."""

    group: str  # floor, pdp, peer, workers, policies, entities, reload
    name: str
    inflight: str = "-"  # "1", "8", "32", "1|32" (p50 at 1, throughput at 32), "-"
    p50_us: float | None = None
    p99_us: float | None = None
    rps: float | None = None  # decisions per second
    cpu_us: float | None = None  # server CPU per decision
    x_p50: float | None = None  # p50 / floor p50 at the same in-flight
    x_rps: float | None = None  # decisions/s / floor's at the same in-flight
    x_cpu: float | None = None  # CPU per decision / floor's
    x_peer: float | None = None  # decisions/s / Cerbos' at the same in-flight
    note: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        return f"{self.group}:{self.name}@{self.inflight}"


@dataclass(frozen=True, slots=True)
class Target:
    """One of the issue's targets and where it stands in this run."""

    name: str
    goal: str
    value: float | None
    limit: float
    higher_is_better: bool
    detail: str = ""

    @property
    def status(self) -> str:
        if self.value is None or math.isnan(self.value):
            return "n/a"
        met = self.value >= self.limit if self.higher_is_better else self.value <= self.limit
        return "met" if met else "missed"


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}x"


COLUMNS = (
    ("row", 54, "<"),
    ("in-flight", 9, ">"),
    ("p50 µs", 9, ">"),
    ("p99 µs", 9, ">"),
    ("dec/s", 9, ">"),
    ("CPU µs/dec", 10, ">"),
    ("p50 xfloor", 10, ">"),
    ("dec/s xfloor", 12, ">"),
    ("CPU xfloor", 10, ">"),
    ("xCerbos", 8, ">"),
)


def render(rows: list[Row], targets: list[Target], header: list[str]) -> str:
    """The table as text: a header block, one line per row (notes under it), then the targets."""
    lines = list(header)
    title = "  ".join(f"{name:{align}{width}}" for name, width, align in COLUMNS)
    lines += ["", title, "-" * len(title)]
    group = None
    for row in rows:
        if group is not None and row.group != group:
            lines.append("")
        group = row.group
        cells = (
            f"{row.group:8} {row.name.removeprefix(row.group + ' ')}"[:54],
            row.inflight,
            _num(row.p50_us),
            _num(row.p99_us),
            _num(row.rps),
            _num(row.cpu_us),
            _ratio(row.x_p50),
            _ratio(row.x_rps),
            _ratio(row.x_cpu),
            _ratio(row.x_peer),
        )
        lines.append(
            "  ".join(
                f"{cell:{align}{width}}"
                for cell, (_, width, align) in zip(cells, COLUMNS, strict=True)
            )
        )
        if row.note:
            lines.append(f"{'':9}  {row.note}")
    lines += ["", "targets"]
    for target in targets:
        value = "-" if target.value is None else f"{target.value:.2f}x"
        lines.append(f"  [{target.status:^6}] {target.name:78} {value:>7}  (goal {target.goal})")
        if target.detail:
            lines.append(f"{'':11}{target.detail}")
    return "\n".join(lines)


def write_json(path: Path, rows: list[Row], targets: list[Target], meta: dict[str, Any]) -> None:
    """bench/results/latest.json: everything in the table, plus raw runs and settings."""
    data = {
        "meta": meta,
        "rows": [asdict(r) for r in rows],
        "targets": [{**asdict(t), "status": t.status} for t in targets],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    return repr(value)
