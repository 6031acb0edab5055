"""Template links (`links.json`): checked, linked, and validated as the policies they become."""

from __future__ import annotations

import json
from typing import Any

import cedarpy

from pdp.bundle.diagnose import json_list
from pdp.bundle.loader import SourceFile
from pdp.bundle.locate import json_array_item_lines
from pdp.bundle.policies import PolicyInfo
from pdp.errors import Problem
from pdp.model import EntityRef


def apply_links(
    policy_set: cedarpy.PolicySet,
    source: SourceFile,
    policies: list[PolicyInfo],
    problems: list[Problem],
) -> tuple[cedarpy.PolicySet, list[PolicyInfo]]:
    """Link the templates as `links.json` asks; blame every item that fails, on its line."""
    items = json_list(source, problems)
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


def validate_links(
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
