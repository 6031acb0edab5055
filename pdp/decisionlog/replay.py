"""Replay: re-decides logged decisions against a candidate bundle and groups what changes.

A line is replayed only when it holds every input of its decision (`"inputs": "full"`: the
context and request entities as sent, nothing masked or cut); anything else is counted as
not replayable, with the reason, and never guessed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pdp import engine
from pdp.bundle.compiler import CompiledBundle
from pdp.decisionlog.entry import PLAN_RESOURCES
from pdp.errors import RequestError
from pdp.model import AuthzRequest, EntityRef

MAX_LINE_CHARS = 1024 * 1024
MAX_EXAMPLES = 3
NO_REQUEST = "no Cedar request (authentication failure or unknown route)"
NOT_LOGGED = "inputs not logged (use --decision-log-requests full)"
MASKED = "inputs masked by the manifest's decision_log rules"
TRUNCATED = "line truncated (over the size limit)"
PLAN = "a query plan (PlanResources), not one decision"
BAD_ENTRY = "entry is not a decision log line"


@dataclass(frozen=True, slots=True)
class Change:
    """One decision that the candidate answers differently."""

    where: str  # the route (Check) or the action
    live: str
    candidate: str
    live_policies: tuple[str, ...]
    candidate_policies: tuple[str, ...]
    decision_id: str
    principal: str
    resource: str
    location: str  # file:line


@dataclass(slots=True)
class Group:
    """Changes with the same route/action, outcome and policies: counted, with examples."""

    where: str
    live: str
    candidate: str
    live_policies: tuple[str, ...]
    candidate_policies: tuple[str, ...]
    count: int = 0
    examples: list[Change] = field(default_factory=list)


@dataclass(slots=True)
class Report:
    """What a replay found."""

    bundle_name: str
    bundle_revision: str
    lines: int = 0
    decisions: int = 0
    replayed: int = 0
    unchanged: int = 0
    reasons_changed: int = 0  # same decision, other determining policies
    unreadable: int = 0
    not_replayable: dict[str, int] = field(default_factory=dict)
    groups: dict[tuple[Any, ...], Group] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        return sum(g.count for g in self.groups.values())

    def add(self, change: Change) -> None:
        key = (
            change.where,
            change.live,
            change.candidate,
            change.live_policies,
            change.candidate_policies,
        )
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(*key)
        group.count += 1
        if len(group.examples) < MAX_EXAMPLES:
            group.examples.append(change)

    def skip(self, reason: str) -> None:
        self.not_replayable[reason] = self.not_replayable.get(reason, 0) + 1

    def sorted_groups(self) -> list[Group]:
        return sorted(self.groups.values(), key=lambda g: (-g.count, g.where, g.live_policies))

    def as_json(self) -> dict[str, Any]:
        return {
            "bundle": {"name": self.bundle_name, "revision": self.bundle_revision},
            "lines": self.lines,
            "decisions": self.decisions,
            "replayed": self.replayed,
            "unchanged": self.unchanged,
            "changed": self.changed,
            "reasons_changed": self.reasons_changed,
            "unreadable": self.unreadable,
            "not_replayable": dict(sorted(self.not_replayable.items())),
            "changes": [
                {
                    "where": g.where,
                    "live": g.live,
                    "candidate": g.candidate,
                    "live_policies": list(g.live_policies),
                    "candidate_policies": list(g.candidate_policies),
                    "count": g.count,
                    "examples": [
                        {
                            "decision_id": c.decision_id,
                            "principal": c.principal,
                            "resource": c.resource,
                            "line": c.location,
                        }
                        for c in g.examples
                    ],
                }
                for g in self.sorted_groups()
            ],
        }


def replay(bundle: CompiledBundle, logs: Iterable[tuple[str, Iterable[str]]]) -> Report:
    """Re-decide every replayable decision of `logs` ((name, lines) pairs) on `bundle`."""
    report = Report(bundle.name, bundle.revision)
    for name, lines in logs:
        for number, entry in _entries(name, lines, report):
            _replay_one(bundle, entry, f"{name}:{number}", report)
    return report


def _entries(name: str, lines: Iterable[str], report: Report) -> Iterator[tuple[int, Any]]:
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        report.lines += 1
        if len(text) > MAX_LINE_CHARS:
            report.unreadable += 1
            continue
        try:
            entry = json.loads(text)
        except ValueError:
            report.unreadable += 1
            continue
        yield number, entry


def _replay_one(bundle: CompiledBundle, entry: Any, location: str, report: Report) -> None:
    if not isinstance(entry, dict) or entry.get("decision") not in ("allow", "deny"):
        if isinstance(entry, dict) and entry.get("api") == PLAN_RESOURCES:
            report.decisions += 1
            report.skip(PLAN)
        else:
            report.unreadable += 1
        return
    report.decisions += 1
    if entry.get("api") == PLAN_RESOURCES:
        report.skip(PLAN)
        return
    if not all(isinstance(entry.get(k), str) for k in ("principal", "action", "resource")):
        report.skip(NO_REQUEST)
        return
    if entry.get("truncated"):
        report.skip(TRUNCATED)
        return
    inputs = entry.get("inputs")
    if inputs == "masked":
        report.skip(MASKED)
        return
    if inputs != "full":
        report.skip(NOT_LOGGED)
        return
    try:
        request = _request(entry)
    except (ValueError, TypeError, KeyError):
        report.skip(BAD_ENTRY)
        return
    report.replayed += 1
    try:
        decision = engine.decide(bundle, request)
        word, policies = decision.word, tuple(decision.determining_policies)
    except RequestError as exc:
        word, policies = "deny", (f"(request refused: {exc})",)
    live_policies = tuple(str(p) for p in entry.get("determining_policies") or ())
    if word == entry["decision"]:
        report.unchanged += 1
        if sorted(policies) != sorted(live_policies):
            report.reasons_changed += 1
        return
    route = entry.get("route")
    where = f"{entry.get('method', '')} {route}".strip() if route else entry["action"]
    report.add(
        Change(
            where=where,
            live=entry["decision"],
            candidate=word,
            live_policies=tuple(sorted(live_policies)),
            candidate_policies=tuple(sorted(policies)),
            decision_id=str(entry.get("decision_id", "")),
            principal=entry["principal"],
            resource=entry["resource"],
            location=location,
        )
    )


def _request(entry: dict[str, Any]) -> AuthzRequest:
    context = entry.get("context")
    if context is not None and not isinstance(context, dict):
        raise ValueError("context")
    entities = [_cedar_entity(e) for e in entry.get("entities") or ()]
    return AuthzRequest(
        principal=EntityRef.parse(entry["principal"]),
        action=EntityRef.parse(entry["action"]),
        resource=EntityRef.parse(entry["resource"]),
        context_json=json.dumps(context) if context is not None else None,
        entities_json=json.dumps(entities) if entities else None,
    )


def _cedar_entity(logged: Any) -> dict[str, Any]:
    """A logged entity (`uid` and `parents` as text) back in Cedar's JSON entity form."""
    if not isinstance(logged, dict):
        raise ValueError("entity")
    entity: dict[str, Any] = {
        "uid": _uid(logged["uid"]),
        "parents": [_uid(p) for p in logged.get("parents") or ()],
        "attrs": logged.get("attrs") or {},
    }
    if logged.get("tags"):
        entity["tags"] = logged["tags"]
    return entity


def _uid(text: Any) -> dict[str, str]:
    if not isinstance(text, str):
        raise ValueError("uid")
    ref = EntityRef.parse(text)
    return {"type": ref.type, "id": ref.id}
