"""Compiles a read bundle into cedarpy handles, locating every error in its file and line."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import cedarpy

from pdp.bundle.index import EntityGraph, PolicyIndex, build_index
from pdp.bundle.loader import BundleLoadError, BundleSource, SourceFile
from pdp.bundle.locate import json_array_item_lines, line_of_token, split_statements
from pdp.errors import Problem
from pdp.gateway.config import GatewayConfig, compile_gateway
from pdp.model import EntityRef

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
    index: PolicyIndex | None = field(default=None, repr=False, compare=False)
    graph: EntityGraph | None = field(default=None, repr=False, compare=False)
    gateway: GatewayConfig | None = field(default=None, repr=False, compare=False)  # routes.yaml

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
    # Entities are checked even when a policy fails, so one run reports both; not without the
    # schema they are declared against, which would only add misleading errors.
    schema_ok = source.schema is None or schema is not None
    entities = _parse_entities(source.entities, schema, problems) if schema_ok else None
    gateway = None
    if source.routes is not None and schema_ok:
        gateway = compile_gateway(source, schema, problems)
    if problems:
        raise BundleLoadError(problems, source.warnings)

    strict_schema = schema if source.manifest.validation == "strict" else None
    policy_set = _build_policy_set(policies, problems)
    links: list[PolicyInfo] = []
    if source.links is not None and policy_set is not None:
        first = len(problems)
        policy_set, links = _apply_links(policy_set, source.links, policies, problems)
        _check_duplicate_ids(policies + links, problems)
        problems[first:] = sorted(problems[first:], key=lambda p: (p.file, p.line or 0))
        if strict_schema is not None and not problems:
            _validate_links(links, strict_schema, problems)
    if strict_schema is not None:
        _validate_policies(source.policies, policies, strict_schema, problems)
    if problems or policy_set is None or entities is None:
        raise BundleLoadError(problems, source.warnings)

    all_policies = tuple(policies + links)
    index, graph = build_index(policy_set, all_policies, entities)
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
        index=index,
        graph=graph,
        gateway=gateway,
    )


def _collect_policies(files: tuple[SourceFile, ...], problems: list[Problem]) -> list[PolicyInfo]:
    policies: list[PolicyInfo] = []
    for source in files:
        try:
            est = json.loads(cedarpy.policies_to_json_str(source.text))
        except ValueError as exc:
            problems.extend(locate_parse_errors(source, str(exc)))
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


def locate_parse_errors(source: SourceFile, whole_error: str) -> list[Problem]:
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
        message, line, column = _locate_schema_error(source, str(exc))
        problems.append(Problem(source.path, f"invalid schema: {message}", line, column))
        return None


_JSON_POSITION = re.compile(r" at line (\d+) column (\d+)$")


def _locate_schema_error(source: SourceFile, message: str) -> tuple[str, int | None, int | None]:
    """The message and where it points: serde's position for JSON, else a best guess."""
    if (match := _JSON_POSITION.search(message)) is not None:
        return message[: match.start()], int(match.group(1)), int(match.group(2))
    if message.startswith("error parsing schema") and not source.path.endswith(".json"):
        # A syntax error (or a name declared twice) is in the first declaration that makes
        # the text up to it fail to parse; later declarations only add unresolved names.
        end = 0
        for declaration in split_statements(source.text, nested=True):
            end = source.text.index(declaration.text, end) + len(declaration.text)
            try:
                cedarpy.Schema.from_str(source.text[:end])
            except ValueError as exc:
                if str(exc).startswith("error parsing schema"):
                    return message, declaration.line, None
        return message, None, None
    for token in [*_BACKTICKED.findall(message), message.rsplit(": ", 1)[-1]]:
        for candidate in (token.strip(), token.strip().rsplit("::", 1)[-1].strip('"')):
            if candidate and (line := line_of_token(source.text, candidate)) is not None:
                return message, line, None
    return message, None, None


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
    shape_errors = 0
    for index, item in enumerate(items):
        line = lines[index] if index < len(lines) else None
        error = _link_shape_error(item, templates)
        if error:
            problems.append(Problem(source.path, f"{_link_label(index, item)}: {error}", line))
            shape_errors += 1
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
    if not requests:
        return policy_set, links
    whole_error: Exception | None = None
    if not shape_errors:
        try:
            return policy_set.with_linked_batch(requests), links
        except (ValueError, KeyError, TypeError) as exc:
            whole_error = exc
    # Only on failure: link one at a time to blame every failing item, not just the first.
    blamed = False
    for request, link in zip(requests, links, strict=True):
        try:
            policy_set.with_linked(request["template_id"], request["new_id"], request["values"])
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(Problem(source.path, f"link {link.id!r}: {exc}", link.line))
            blamed = True
    if whole_error is not None and not blamed:
        problems.append(Problem(source.path, f"links: {whole_error}"))
    return policy_set, links


def _link_label(index: int, item: Any) -> str:
    link_id = item.get("link_id") if isinstance(item, dict) else None
    return f"link {link_id!r}" if isinstance(link_id, str) and link_id else f"link #{index}"


def _template_slots(est: dict[str, Any]) -> set[str]:
    """The slots a template's scope declares: "?principal", "?resource" or both."""
    slots = set()
    for part in ("principal", "resource"):
        constraint = est.get(part, {})
        for node in (constraint, constraint.get("in", {})):
            if isinstance(node, dict) and isinstance(node.get("slot"), str):
                slots.add(node["slot"])
    return slots


def _link_shape_error(item: Any, templates: dict[str, PolicyInfo]) -> str | None:
    if not isinstance(item, dict):
        return "must be an object with template_id, link_id and args"
    for key in ("template_id", "link_id"):
        if not isinstance(item.get(key), str) or not item[key]:
            return f"{key} must be a non-empty string"
    if item["template_id"] not in templates:
        known = ", ".join(sorted(templates)) or "none"
        return f"unknown template {item['template_id']!r} (templates: {known})"
    template = templates[item["template_id"]]
    slots = _template_slots(template.est)
    wanted = " and ".join(f'"{slot}"' for slot in sorted(slots))
    args = item.get("args")
    if not isinstance(args, dict):
        return f"args must be an object mapping {wanted} to entity uids"
    unknown, missing = sorted(set(args) - slots), sorted(slots - set(args))
    if unknown:
        return f'unknown slot "{unknown[0]}" (template {template.id!r} has {wanted})'
    if missing:
        return f'args is missing "{missing[0]}" (template {template.id!r} has {wanted})'
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


def _validate_links(
    links: list[PolicyInfo], schema: cedarpy.Schema, problems: list[Problem]
) -> None:
    """Validate each link as the static policy it becomes, as Cedar's validator does."""
    if not links:
        return
    document = {
        "staticPolicies": {
            f"policy{n}": {
                **_fill_slots(link.est, link.link_values or {}),
                "annotations": {"id": link.id},
            }
            for n, link in enumerate(links)
        },
        "templates": {},
        "templateLinks": [],
    }
    text = cedarpy.policies_from_json_str(json.dumps(document))
    result = cedarpy.validate_policies(text, schema)
    by_id = {link.id: link for link in links}
    for error in result.errors:
        link = by_id.get(result.id_annotations_by_policy_id.get(error.policy_id, ""))
        if link is None:  # every statement carries its link's id; never expected
            problems.append(Problem(links[0].file, f"schema validation: {error.error}"))
            continue
        message = error.error.replace(f"`{error.policy_id}`", f"`{link.id}`")
        problems.append(
            Problem(
                link.file,
                f"schema validation: {message} (template {link.template_id!r})",
                link.line,
            )
        )


def _fill_slots(node: Any, values: dict[str, Any]) -> Any:
    """A template's EST with each `{"slot": "?x"}` replaced by the linked entity."""
    if isinstance(node, list):
        return [_fill_slots(item, values) for item in node]
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("slot"), str) and node["slot"] in values:
        filled = {k: v for k, v in node.items() if k != "slot"}
        return {**filled, "entity": _entity_json(values[node["slot"]])}
    return {key: _fill_slots(value, values) for key, value in node.items()}


def _entity_json(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {"type": value["type"], "id": value["id"]}
    return EntityRef.parse(value).to_json()


def _parse_entities(
    source: SourceFile | None, schema: cedarpy.Schema | None, problems: list[Problem]
) -> cedarpy.Entities | None:
    if source is None:
        return cedarpy.Entities.from_json_str("[]", schema)
    try:
        entities = cedarpy.Entities.from_json_str(source.text, schema)
    except ValueError as exc:
        problems.extend(_locate_entity_errors(source, schema, str(exc)))
        return None
    # cedarpy accepts identical duplicates; in a reviewed file a repeated uid is a mistake.
    duplicates = _duplicate_entities(source, json.loads(source.text))
    problems.extend(duplicates)
    return None if duplicates else entities


def _locate_entity_errors(
    source: SourceFile, schema: cedarpy.Schema | None, whole_error: str
) -> list[Problem]:
    located: list[Problem] = []
    items = _json_list(source, located)
    if items is None:
        return located
    lines = json_array_item_lines(source.text)
    for index, item in enumerate(items):
        try:
            cedarpy.Entities.from_json_str(json.dumps([item]), schema)
        except ValueError as exc:
            message = f"entity {_uid_text(item)}: {exc}{_entity_hint(item, schema)}"
            located.append(Problem(source.path, message, _item_line(lines, index)))
    located += _duplicate_entities(source, items)
    return located or [Problem(source.path, f"invalid entities: {whole_error}")]


def _item_line(lines: list[int], index: int) -> int | None:
    return lines[index] if index < len(lines) else None


def _entities_parse(items: list[Any], schema: cedarpy.Schema | None) -> bool:
    try:
        cedarpy.Entities.from_json_str(json.dumps(items), schema)
    except ValueError:
        return False
    return True


def _duplicate_entities(source: SourceFile, items: list[Any]) -> list[Problem]:
    first: dict[str, int] = {}
    repeated: list[tuple[str, int, int]] = []
    for index, item in enumerate(items):
        uid = _uid_text(item)
        if uid == "(no uid)":
            continue
        earlier = first.setdefault(uid, index)
        if earlier != index:
            repeated.append((uid, earlier, index))
    if not repeated:  # the common case: no need to locate anything
        return []
    lines = json_array_item_lines(source.text)
    problems: list[Problem] = []
    for uid, earlier, index in repeated:
        where = f" (first at line {lines[earlier]})" if earlier < len(lines) else ""
        message = f"entity {uid}: duplicate entity uid{where}"
        problems.append(Problem(source.path, message, _item_line(lines, index)))
    return problems


_ENTITY_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*")


def _entity_hint(item: Any, schema: cedarpy.Schema | None) -> str:
    """Which part of an entity the schema rejects, found by probing variants of the entity.

    cedarpy reports only "entity does not conform to the schema", never which attribute.
    """
    if schema is None or not isinstance(item, dict) or not _entities_parse([item], None):
        return ""
    uid = item["uid"].get("__entity", item["uid"])
    entity_type = uid["type"]
    is_action = entity_type == "Action" or entity_type.endswith("::Action")
    if _ENTITY_TYPE.fullmatch(entity_type) and not is_action:
        probe = f"permit (principal, action, resource) when {{ principal is {entity_type} }};"
        result = cedarpy.validate_policies(probe, schema)
        if any("unrecognized entity type" in e.error for e in result.errors):
            return f" (entity type {entity_type} is not declared in the schema)"
    attrs, parents = item.get("attrs") or {}, item.get("parents") or []
    hints: list[str] = []
    # Attributes are probed without parents, parents with the rejected attributes left out,
    # so that one fault does not hide the other.
    fixed = dict(attrs)
    for name in attrs:
        hint, replacement = _attribute_hint(item, attrs, name, entity_type, schema)
        if hint:
            hints.append(hint)
            if replacement is _REMOVE:
                del fixed[name]
            else:
                fixed[name] = replacement
    if not _entities_parse([{**item, "attrs": fixed, "parents": []}], schema):
        hints.append("a required attribute may be missing, or several attributes are wrong")
    else:
        hints += [
            f"the schema does not allow {_uid_text({'uid': parent})} as a parent of {entity_type}"
            for parent in parents
            if not _entities_parse([{**item, "attrs": fixed, "parents": [parent]}], schema)
        ]
    return f" ({'; '.join(hints)})" if hints else ""


_REMOVE = object()
_TYPE_PROBES: tuple[tuple[str, type, Any], ...] = (
    ("a String", str, ""),
    ("a Boolean", bool, False),
    ("a Long", int, 0),
    ("a Set", list, []),
)


def _attribute_hint(
    item: dict[str, Any],
    attrs: dict[str, Any],
    name: str,
    entity_type: str,
    schema: cedarpy.Schema,
) -> tuple[str, Any]:
    """Why the schema rejects attribute `name` ("" when it does not) and a value it accepts."""
    for expected, python_type, value in _TYPE_PROBES:
        if _entities_parse([{**item, "attrs": {**attrs, name: value}, "parents": []}], schema):
            if type(attrs[name]) is python_type:  # the value has the accepted type already
                return "", None
            return f"attribute `{name}`: the schema expects {expected}", value
    if _entities_parse([{**item, "attrs": _without(attrs, name), "parents": []}], schema):
        return (
            f"attribute `{name}`: not declared for {entity_type} in the schema,"
            " or a value of the wrong type"
        ), _REMOVE
    return "", None


def _without(attrs: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in attrs.items() if key != name}


def _uid_text(item: Any) -> str:
    uid = item.get("uid") if isinstance(item, dict) else None
    if isinstance(uid, dict) and "__entity" in uid:
        uid = uid["__entity"]
    if isinstance(uid, dict) and isinstance(uid.get("type"), str):
        return f"{uid['type']}::{json.dumps(uid.get('id'), ensure_ascii=False)}"
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
