"""Compiles a read bundle into cedarpy handles, locating every error in its file and line."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import cedarpy

from pdp.bundle.loader import BundleSource, SourceFile
from pdp.bundle.locate import json_array_item_lines, line_of_token, split_statements
from pdp.errors import BundleError, Problem

_POSITIONAL = re.compile(r"policy(\d+)")
_BACKTICKED = re.compile(r"`([^`]+)`")


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """One policy, template or template link of a bundle, under its bundle id."""

    id: str
    internal_id: str
    file: str
    line: int | None
    effect: str
    kind: str  # "static", "template" or "link"
    est: dict[str, Any] = field(repr=False, hash=False, compare=False)
    template_id: str | None = None  # for links: the bundle id of the template
    link_values: dict[str, dict[str, str]] | None = None  # for links: slot -> entity uid


@dataclass(frozen=True, slots=True)
class CompiledBundle:
    """Everything a decision needs, pre-parsed once; immutable, swapped in whole."""

    name: str
    revision: str
    root: str
    validation: str
    policy_set: cedarpy.PolicySet
    schema: cedarpy.Schema | None
    entities: cedarpy.Entities
    policies: tuple[PolicyInfo, ...]
    by_internal_id: dict[str, PolicyInfo]
    entity_count: int
    source: BundleSource
    warnings: tuple[Problem, ...]

    def policy(self, bundle_id: str) -> PolicyInfo | None:
        return next((p for p in self.policies if p.id == bundle_id), None)

    @property
    def policy_count(self) -> int:
        return sum(1 for p in self.policies if p.kind == "static")

    @property
    def link_count(self) -> int:
        return sum(1 for p in self.policies if p.kind == "link")


def compile_bundle(source: BundleSource) -> CompiledBundle:
    """Parse, link, validate and compile `source`; raise BundleError with every problem found."""
    problems: list[Problem] = []
    policies = _collect_policies(source.policies, problems)
    _check_duplicate_ids(policies, problems)
    schema = _parse_schema(source.schema, problems)
    if problems:
        raise BundleError(problems)

    policy_set = _build_policy_set(policies, problems)
    links: list[PolicyInfo] = []
    if source.links is not None and policy_set is not None:
        policy_set, links = _apply_links(policy_set, source.links, policies, problems)
        _check_duplicate_ids(policies + links, problems)
    if schema is not None and source.manifest.validation == "strict":
        _validate_policies(source.policies, policies, schema, problems)
    entities = _parse_entities(source.entities, schema, problems)
    if problems or policy_set is None or entities is None:
        raise BundleError(problems)

    all_policies = tuple(policies + links)
    return CompiledBundle(
        name=source.name,
        revision=source.revision,
        root=source.root,
        validation=source.manifest.validation,
        policy_set=policy_set,
        schema=schema,
        entities=entities,
        policies=all_policies,
        by_internal_id={p.internal_id: p for p in all_policies},
        entity_count=len(entities),
        source=source,
        warnings=source.warnings,
    )


def _collect_policies(files: tuple[SourceFile, ...], problems: list[Problem]) -> list[PolicyInfo]:
    policies: list[PolicyInfo] = []
    for source in files:
        try:
            est = json.loads(cedarpy.policies_to_json_str(source.text))
        except ValueError as exc:
            problems.extend(_locate_parse_errors(source, str(exc)))
            continue
        statements = split_statements(source.text)
        entries = [("static", k, v) for k, v in est.get("staticPolicies", {}).items()]
        entries += [("template", k, v) for k, v in est.get("templates", {}).items()]
        entries.sort(key=lambda entry: _position(entry[1]))
        for kind, key, body in entries:
            n = _position(key)
            line = statements[n].line if len(statements) == len(entries) else None
            annotated = body.get("annotations", {}).get("id")
            if annotated is not None and not annotated.strip():
                problems.append(Problem(source.path, "@id annotation must not be empty", line))
                continue
            policy_id = annotated if annotated is not None else f"{source.path}#{n}"
            policies.append(
                PolicyInfo(
                    id=policy_id,
                    internal_id=f"p{len(policies)}",
                    file=source.path,
                    line=line,
                    effect=body.get("effect", ""),
                    kind=kind,
                    est=body,
                )
            )
    return policies


def _position(key: str) -> int:
    match = _POSITIONAL.fullmatch(key)
    if match is None:  # cedarpy always numbers surface-syntax policies; never expected
        raise ValueError(f"unexpected policy id from cedarpy: {key!r}")
    return int(match.group(1))


def _locate_parse_errors(source: SourceFile, whole_error: str) -> list[Problem]:
    """Blame the statements that fail on their own; fall back to the file."""
    located: list[Problem] = []
    for statement in split_statements(source.text):
        try:
            cedarpy.policies_to_json_str(statement.text)
        except ValueError as exc:
            located.append(
                Problem(source.path, f"invalid policy: {exc}", statement.line, statement.column)
            )
    return located or [Problem(source.path, f"invalid policy: {whole_error}")]


def _check_duplicate_ids(policies: list[PolicyInfo], problems: list[Problem]) -> None:
    first: dict[str, PolicyInfo] = {}
    for policy in policies:
        earlier = first.setdefault(policy.id, policy)
        if earlier is not policy:
            where = earlier.file + (f":{earlier.line}" if earlier.line else "")
            problems.append(
                Problem(
                    policy.file,
                    f"duplicate policy id {policy.id!r} (first defined at {where})",
                    policy.line,
                )
            )


def _parse_schema(source: SourceFile | None, problems: list[Problem]) -> cedarpy.Schema | None:
    if source is None:
        return None
    try:
        if source.path.endswith(".json"):
            return cedarpy.Schema.from_json_str(source.text)
        return cedarpy.Schema.from_str(source.text)
    except ValueError as exc:
        message = str(exc)
        line = None
        for token in _BACKTICKED.findall(message) + message.rsplit(":", 1)[-1].split(","):
            token = token.strip()
            if token and (line := line_of_token(source.text, token)) is not None:
                break
        problems.append(Problem(source.path, f"invalid schema: {message}", line))
        return None


def _build_policy_set(
    policies: list[PolicyInfo], problems: list[Problem]
) -> cedarpy.PolicySet | None:
    document = {
        "staticPolicies": {p.internal_id: p.est for p in policies if p.kind == "static"},
        "templates": {p.internal_id: p.est for p in policies if p.kind == "template"},
        "templateLinks": [],
    }
    try:
        return cedarpy.PolicySet.from_json_str(json.dumps(document))
    except ValueError as exc:
        problems.append(Problem(policies[0].file if policies else "", f"policy set: {exc}"))
        return None


def _apply_links(
    policy_set: cedarpy.PolicySet,
    source: SourceFile,
    policies: list[PolicyInfo],
    problems: list[Problem],
) -> tuple[cedarpy.PolicySet, list[PolicyInfo]]:
    items = _json_list(source, problems)
    if items is None:
        return policy_set, []
    lines = json_array_item_lines(source.text)
    templates = {p.id: p for p in policies if p.kind == "template"}
    links: list[PolicyInfo] = []
    requests: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        line = lines[index] if index < len(lines) else None
        error = _link_shape_error(item, templates)
        if error:
            problems.append(Problem(source.path, f"link {index}: {error}", line))
            continue
        template = templates[item["template_id"]]
        internal_id = f"l{index}"
        requests.append(
            {"template_id": template.internal_id, "new_id": internal_id, "values": item["args"]}
        )
        links.append(
            PolicyInfo(
                id=item["link_id"],
                internal_id=internal_id,
                file=source.path,
                line=line,
                effect=template.effect,
                kind="link",
                est=template.est,
                template_id=template.id,
                link_values=item["args"],
            )
        )
    if problems or not requests:
        return policy_set, links
    try:
        return policy_set.with_linked_batch(requests), links
    except (ValueError, KeyError, TypeError) as exc:
        whole_error = exc
    # Only on failure: link one at a time to blame the right items.
    for request, link in zip(requests, links, strict=True):
        try:
            policy_set.with_linked(request["template_id"], request["new_id"], request["values"])
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(Problem(source.path, f"link {link.id!r}: {exc}", link.line))
    if not any(p.file == source.path for p in problems):
        problems.append(Problem(source.path, f"links: {whole_error}"))
    return policy_set, links


def _link_shape_error(item: Any, templates: dict[str, PolicyInfo]) -> str | None:
    if not isinstance(item, dict):
        return "must be an object with template_id, link_id and args"
    for key in ("template_id", "link_id"):
        if not isinstance(item.get(key), str) or not item[key]:
            return f"{key} must be a non-empty string"
    if item["template_id"] not in templates:
        known = ", ".join(sorted(templates)) or "none"
        return f"unknown template {item['template_id']!r} (templates: {known})"
    args = item.get("args")
    if not isinstance(args, dict) or not args:
        return 'args must map "?principal"/"?resource" to entity uids'
    return None


def _validate_policies(
    files: tuple[SourceFile, ...],
    policies: list[PolicyInfo],
    schema: cedarpy.Schema,
    problems: list[Problem],
) -> None:
    # Positional ids (policyN) count over the concatenated text, in the order we collected.
    text = "\n".join(f.text for f in files)
    result = cedarpy.validate_policies(text, schema)
    if result.validation_passed:
        return
    for error in result.errors:
        match = _POSITIONAL.fullmatch(error.policy_id)
        if match is None or int(match.group(1)) >= len(policies):
            problems.append(Problem(files[0].path, f"validation: {error.error}"))
            continue
        policy = policies[int(match.group(1))]
        message = error.error.replace(f"`{error.policy_id}`", f"`{policy.id}`")
        problems.append(Problem(policy.file, f"schema validation: {message}", policy.line))


def _parse_entities(
    source: SourceFile | None, schema: cedarpy.Schema | None, problems: list[Problem]
) -> cedarpy.Entities | None:
    if source is None:
        return cedarpy.Entities.from_json_str("[]", schema)
    try:
        return cedarpy.Entities.from_json_str(source.text, schema)
    except ValueError as exc:
        problems.extend(_locate_entity_errors(source, schema, str(exc)))
        return None


def _locate_entity_errors(
    source: SourceFile, schema: cedarpy.Schema | None, whole_error: str
) -> list[Problem]:
    located: list[Problem] = []
    items = _json_list(source, located)
    if items is None:
        return located
    lines = json_array_item_lines(source.text)
    for index, item in enumerate(items):
        line = lines[index] if index < len(lines) else None
        try:
            cedarpy.Entities.from_json_str(json.dumps([item]), schema)
        except ValueError as exc:
            located.append(Problem(source.path, f"entity {_uid_text(item)}: {exc}", line))
    if located:
        return located
    duplicate = _BACKTICKED.search(whole_error)
    if duplicate and "duplicate" in whole_error:
        seen = [i for i, item in enumerate(items) if _uid_text(item) == duplicate.group(1)]
        if len(seen) > 1 and seen[1] < len(lines):
            return [Problem(source.path, f"invalid entities: {whole_error}", lines[seen[1]])]
    return [Problem(source.path, f"invalid entities: {whole_error}")]


def _uid_text(item: Any) -> str:
    uid = item.get("uid") if isinstance(item, dict) else None
    if isinstance(uid, dict) and "__entity" in uid:
        uid = uid["__entity"]
    if isinstance(uid, dict) and isinstance(uid.get("type"), str):
        return f"{uid['type']}::{json.dumps(uid.get('id'))}"
    return "(no uid)"


def _json_list(source: SourceFile, problems: list[Problem]) -> list[Any] | None:
    try:
        items = json.loads(source.text)
    except json.JSONDecodeError as exc:
        problems.append(Problem(source.path, f"invalid JSON: {exc.msg}", exc.lineno, exc.colno))
        return None
    if not isinstance(items, list):
        problems.append(Problem(source.path, "must be a JSON array", 1))
        return None
    return items
