"""A bundle's policies under pdp's ids: collected from the .cedar files, checked, set up."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

import cedarpy

from pdp.bundle.diagnose import locate_parse_errors, parser_hazard_problem
from pdp.bundle.loader import SourceFile
from pdp.bundle.locate import split_statements
from pdp.errors import Problem

_POSITIONAL = re.compile(r"policy(\d+)")


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


def collect_policies(files: tuple[SourceFile, ...], problems: list[Problem]) -> list[PolicyInfo]:
    """Every policy and template of the .cedar files, under its bundle id and line."""
    policies: list[PolicyInfo] = []
    for source in files:
        hazard = parser_hazard_problem(source)
        if hazard is not None:
            problems.append(hazard)
            continue
        try:
            est = json.loads(cedarpy.policies_to_json_str(source.text))
        except ValueError as exc:
            problems.extend(locate_parse_errors(source, str(exc)))
            continue
        except RecursionError:  # a chain of hundreds of operators: too deep for json
            message = "invalid policy: an expression nested too deeply (hundreds of operators)"
            problems.append(Problem(source.path, message))
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


def check_duplicate_ids(policies: list[PolicyInfo], problems: list[Problem]) -> None:
    """Report each id used again, naming where it was first defined."""
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


def build_policy_set(
    policies: list[PolicyInfo], files: tuple[SourceFile, ...], problems: list[Problem]
) -> tuple[cedarpy.PolicySet | None, list[PolicyInfo]]:
    """One cedarpy PolicySet of `policies`, and the policies under the ids it gives them.

    Normally built from Cedar's JSON form under our internal ids (p0, p1, ...). That form's
    parser stops at 128 levels of nesting (each operator of a chain such as a && b && c is a
    level), where Cedar's text parser does not: such a bundle is built from its text instead,
    under Cedar's positional ids (policy0, ... over the files in order, as we collected them).
    """
    try:
        return cedarpy.PolicySet.from_json_str(_policy_set_json(policies)), policies
    except ValueError as exc:
        json_error = exc
    try:
        policy_set = cedarpy.PolicySet.from_str("\n".join(f.text for f in files))
    except ValueError as exc:
        first = policies[0].file if policies else ""
        problems.append(Problem(first, f"policy set: {exc} (JSON form: {json_error})"))
        return None, policies
    if len(policy_set) + len(policy_set.templates()) != len(policies):  # never expected
        problems.append(Problem(policies[0].file, f"policy set: {json_error}"))
        return None, policies
    return policy_set, [replace(p, internal_id=f"policy{n}") for n, p in enumerate(policies)]


def by_positional_ids(policies: list[PolicyInfo]) -> bool:
    """Whether the policies carry Cedar's positional ids (a set built from text)."""
    return bool(policies) and policies[0].internal_id.startswith("policy")


def _policy_set_json(policies: list[PolicyInfo]) -> str:
    return json.dumps(
        {
            "staticPolicies": {p.internal_id: p.est for p in policies if p.kind == "static"},
            "templates": {p.internal_id: p.est for p in policies if p.kind == "template"},
            "templateLinks": [],
        }
    )


def validate_policies(
    files: tuple[SourceFile, ...],
    policies: list[PolicyInfo],
    schema: cedarpy.Schema,
    problems: list[Problem],
) -> None:
    """Schema-validate the policy files, naming each problem by file, line and bundle id."""
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
