"""manifest.yaml, read once into typed values: name, revision, validation, decision log rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pdp.errors import Problem, YamlError
from pdp.yamlsrc import YMap, load

MANIFEST = "manifest.yaml"
MANIFEST_KEYS = ("name", "revision", "validation", "decision_log")
VALIDATION_MODES = ("strict", "off")
LOG_ROOTS = ("context", "attrs")  # what a decision log path may start with
LOG_KEYS = ("context", "entities", "mask", "drop", "mask_secrets")


@dataclass(frozen=True, slots=True)
class LogRules:
    """A bundle's `decision_log` manifest section: what request data is logged, and masked."""

    context: bool = False
    entities: bool = False
    mask: tuple[tuple[str, ...], ...] = ()
    drop: tuple[tuple[str, ...], ...] = ()
    mask_secrets: bool = True

    @classmethod
    def parse(cls, value: object) -> LogRules:
        """Rules from the manifest value; raise ValueError naming the problem."""
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise ValueError("decision_log must be a mapping")
        unknown = sorted(set(value) - set(LOG_KEYS), key=str)
        if unknown:
            raise ValueError(
                f"decision_log: unknown key {unknown[0]!r} (expected {', '.join(LOG_KEYS)})"
            )
        flags = {}
        for key, default in (("context", False), ("entities", False), ("mask_secrets", True)):
            flag = value.get(key, default)
            if not isinstance(flag, bool):
                raise ValueError(f"decision_log.{key} must be true or false")
            flags[key] = flag
        return cls(
            mask=_parse_paths(value.get("mask"), "mask"),
            drop=_parse_paths(value.get("drop"), "drop"),
            **flags,
        )


def _parse_paths(value: object, key: str) -> tuple[tuple[str, ...], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"decision_log.{key} must be a list of paths like context.user.ssn")
    paths = []
    for text in value:
        parts = tuple(text.split("."))
        if len(parts) < 2 or parts[0] not in LOG_ROOTS or "" in parts or parts[-1] == "**":
            raise ValueError(
                f"decision_log.{key}: {text!r} must be a dotted path under context. or attrs. "
                "(a segment may be * for any key, or ** for any depth before a key)"
            )
        paths.append(parts)
    return tuple(paths)


@dataclass(frozen=True, slots=True)
class Manifest:
    """The bundle's `manifest.yaml`, with defaults for what it leaves out."""

    name: str = ""
    revision: str = ""
    validation: str = "strict"
    decision_log: LogRules = field(default_factory=LogRules)


def parse_manifest(path: str, text: str) -> tuple[Manifest, list[Problem]]:
    """The manifest in `text`, and its problems (errors, and warnings for unknown keys)."""
    try:
        document = load(path, text)
    except YamlError as exc:
        return Manifest(), exc.problems
    if document is None:  # empty, or only comments
        return Manifest(), []
    if not isinstance(document, YMap):
        return Manifest(), [Problem(path, "must be a YAML mapping", line=1)]
    problems: list[Problem] = []
    for key in sorted(set(document) - set(MANIFEST_KEYS), key=str):
        line = document.lines[key]
        problems.append(Problem(path, f"unknown key {key!r}", line, severity="warning"))
    # Values are read as written: YAML would turn `revision: 1.10` into 1.1, `0123` into 83
    # and a bare `validation: off` into false.
    values: dict[str, str] = {}
    for key in ("name", "revision", "validation"):
        if document.get(key) is None:  # absent, empty or null
            continue
        if key not in document.texts:
            problems.append(Problem(path, f"{key} must be a string", document.lines[key]))
        else:
            values[key] = document.texts[key]
    validation = values.get("validation", "strict")
    if validation not in VALIDATION_MODES:
        problems.append(
            Problem(
                path,
                f"validation must be 'strict' or 'off', not {validation!r}",
                document.lines["validation"],
            )
        )
    try:
        rules = LogRules.parse(document.get("decision_log"))
    except ValueError as exc:
        problems.append(Problem(path, str(exc), document.lines["decision_log"]))
        rules = LogRules()
    manifest = Manifest(
        name=values.get("name", ""),
        revision=values.get("revision", ""),
        validation=validation,
        decision_log=rules,
    )
    return manifest, problems
