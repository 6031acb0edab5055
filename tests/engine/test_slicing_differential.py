"""Sliced evaluation (policy index + entity subsets) decides exactly as whole-set evaluation."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cedarpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp import engine, evaluation
from pdp.bundle import CompiledBundle, load_bundle
from pdp.model import AuthzRequest, EntityRef
from tests.support.conformance import load_cases, write_bundle
from tests.support.paths import CONFORMANCE

CASES = load_cases(CONFORMANCE) if CONFORMANCE.is_dir() else []


@contextmanager
def merging(strategy: str) -> Iterator[None]:
    """Request entities merged by cutting a subset of the bundle's, or by Cedar's own copy."""
    saved = evaluation.SUBSET_MIN_BUNDLE_ENTITIES
    evaluation.SUBSET_MIN_BUNDLE_ENTITIES = 0 if strategy == "subset" else 10**9
    try:
        yield
    finally:
        evaluation.SUBSET_MIN_BUNDLE_ENTITIES = saved


STRATEGIES = ("subset", "copy")


@pytest.fixture(params=STRATEGIES)
def strategy(request: pytest.FixtureRequest) -> Iterator[str]:
    with merging(request.param):
        yield request.param


def reference(
    bundle: CompiledBundle, request: dict[str, Any], entities_json: str | None
) -> tuple[bool | None, set[str], set[str]]:
    """Cedar on the whole policy set and the whole entity set: what slicing must reproduce."""
    entities = bundle.entities
    if entities_json:
        entities = entities.with_added_json_str(entities_json, bundle.schema)
    result = cedarpy.is_authorized(request, bundle.policy_set, entities, bundle.schema)
    if result.decision is cedarpy.Decision.NoDecision:
        return None, set(), set()
    ids = bundle.by_internal_id
    erroring = {
        ids[e.split("`")[1]].id
        for e in result.diagnostics.errors
        if e.startswith("error while evaluating policy")
    }
    return result.allowed, {ids[r].id for r in result.diagnostics.reasons}, erroring


def sliced(
    bundle: CompiledBundle, request: dict[str, Any], entities_json: str | None
) -> tuple[bool | None, set[str], set[str]]:
    model = AuthzRequest(
        principal=EntityRef(**request["principal"]),
        action=EntityRef(**request["action"]),
        resource=EntityRef(**request["resource"]),
        context_json=json.dumps(request.get("context", {})),
        entities_json=entities_json,
    )
    try:
        decision = engine.decide(bundle, model)
    except engine.RequestError:
        return None, set(), set()
    return decision.allowed, set(decision.determining_policies), set(decision.erroring_policies)


def test_conformance_cases_sliced_equal_unsliced(tmp_path: Path) -> None:
    checked = indexed = 0
    for case in CASES:
        bundle = load_bundle(
            write_bundle(case, tmp_path / case.name, None if case.should_validate else "off")
        )
        indexed += bundle.index is not None
        for item in case.requests:
            request = {k: item[k] for k in ("principal", "action", "resource", "context")}
            assert sliced(bundle, request, None) == reference(bundle, request, None), (
                case.name,
                item["description"],
            )
            checked += 1
    assert checked == sum(len(c.requests) for c in CASES) > 0
    assert indexed == len(CASES)


def test_conformance_cases_with_request_entities(tmp_path: Path) -> None:
    """Move each request's principal and resource out of the bundle and into the request."""
    checked = 0
    for case in CASES:
        entities = json.loads((case.path / "entities.json").read_text())
        for number, item in enumerate(case.requests):
            wanted = {_key(item["principal"]), _key(item["resource"])}
            moved = [e for e in entities if _key(e["uid"]) in wanted]
            if not moved:
                continue
            kept = [e for e in entities if _key(e["uid"]) not in wanted]
            target = write_bundle(
                case, tmp_path / f"{case.name}-{number}", None if case.should_validate else "off"
            )
            (target / "entities.json").write_text(json.dumps(kept))
            bundle = load_bundle(target)
            request = {k: item[k] for k in ("principal", "action", "resource", "context")}
            for strategy in STRATEGIES:
                with merging(strategy):
                    got = sliced(bundle, request, json.dumps(moved))
                expected = reference(bundle, request, json.dumps(moved))
                assert got[0] == (item["expected_decision"] == "allow"), (case.name, strategy)
                assert got == expected, (case.name, number, strategy)
            checked += 1
            break  # one request per case keeps this fast
    assert checked > 100


def _key(uid: dict[str, Any]) -> tuple[str, str]:
    uid = uid.get("__entity", uid)
    return (uid["type"], uid["id"])


# ---- randomized policy sets and requests -------------------------------------------------

USERS = [f'User::"u{i}"' for i in range(4)]
GROUPS = [f'Group::"g{i}"' for i in range(3)]
DOCS = [f'Doc::"d{i}"' for i in range(4)]
ACTIONS = ['Action::"read"', 'Action::"write"', 'Action::"delete"']
ACTION_GROUPS = ['Action::"readers"', 'Action::"all"']


def _scope(var: str, pool: list[str], types: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(var),
        st.sampled_from(pool).map(lambda e: f"{var} == {e}"),
        st.sampled_from(GROUPS + pool).map(lambda e: f"{var} in {e}"),
        st.sampled_from(types).map(lambda t: f"{var} is {t}"),
        st.tuples(st.sampled_from(types), st.sampled_from(GROUPS)).map(
            lambda p: f"{var} is {p[0]} in {p[1]}"
        ),
    )


_ACTION_SCOPE = st.one_of(
    st.just("action"),
    st.sampled_from(ACTIONS + ACTION_GROUPS).map(lambda a: f"action == {a}"),
    st.sampled_from(ACTION_GROUPS + ACTIONS).map(lambda a: f"action in {a}"),
    st.lists(st.sampled_from(ACTIONS + ACTION_GROUPS), min_size=1, max_size=3).map(
        lambda a: f"action in [{', '.join(a)}]"
    ),
)
_CONDITION = st.sampled_from(
    [
        "",
        " when { resource.owner == principal }",
        " when { principal.level > 2 }",
        " when { resource.owner.level > principal.level }",
        ' when { principal in Group::"g1" }',
        ' when { User::"u1".level > 1 }',
        ' when { User::"u2" in resource.owner }',
        " unless { resource has secret && resource.secret }",
        " when { context.flag }",
        " when { principal.manager.level == 3 }",
        ' when { resource in Group::"g0" || principal == User::"u3" }',
    ]
)
_POLICY = st.builds(
    lambda effect, p, a, r, c: f"{effect} ({p}, {a}, {r}){c};",
    st.sampled_from(["permit", "forbid"]),
    _scope("principal", USERS, ["User", "Group"]),
    _ACTION_SCOPE,
    _scope("resource", DOCS, ["Doc", "Group"]),
    _CONDITION,
)
_TEMPLATE = st.builds(
    lambda effect, a, c: f"{effect} (principal == ?principal, {a}, resource in ?resource){c};",
    st.sampled_from(["permit", "forbid"]),
    _ACTION_SCOPE,
    _CONDITION,
)


def _uid_json(text: str) -> dict[str, str]:
    kind, ident = text.split("::")
    return {"type": kind, "id": ident.strip('"')}


@st.composite
def _entities(draw: st.DrawFn) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for user in USERS:
        if draw(st.booleans()):
            attrs: dict[str, Any] = {"level": draw(st.integers(0, 4))}
            if draw(st.booleans()):
                attrs["manager"] = {"__entity": _uid_json(draw(st.sampled_from(USERS)))}
            parents = draw(st.lists(st.sampled_from(GROUPS), max_size=2, unique=True))
            items.append(
                {"uid": _uid_json(user), "attrs": attrs, "parents": [_uid_json(g) for g in parents]}
            )
    for doc in DOCS:
        if draw(st.booleans()):
            attrs = {"owner": {"__entity": _uid_json(draw(st.sampled_from(USERS)))}}
            if draw(st.booleans()):
                attrs["secret"] = draw(st.booleans())
            parents = draw(st.lists(st.sampled_from(GROUPS), max_size=2, unique=True))
            items.append(
                {"uid": _uid_json(doc), "attrs": attrs, "parents": [_uid_json(g) for g in parents]}
            )
    for group in GROUPS[1:]:
        if draw(st.booleans()):
            items.append({"uid": _uid_json(group), "attrs": {}, "parents": [_uid_json(GROUPS[0])]})
    items.append(
        {
            "uid": _uid_json('Action::"read"'),
            "attrs": {},
            "parents": [_uid_json('Action::"readers"'), _uid_json('Action::"all"')],
        }
    )
    items.append(
        {"uid": _uid_json('Action::"write"'), "attrs": {}, "parents": [_uid_json('Action::"all"')]}
    )
    return items


@st.composite
def _scenario(draw: st.DrawFn) -> dict[str, Any]:
    policies = draw(st.lists(_POLICY, min_size=1, max_size=12))
    templates = draw(st.lists(_TEMPLATE, max_size=2))
    links = []
    for number, _ in enumerate(templates):
        for link in range(draw(st.integers(0, 3))):
            links.append(
                {
                    "template_id": f"t{number}",
                    "link_id": f"link-{number}-{link}",
                    "args": {
                        "?principal": draw(st.sampled_from(USERS)),
                        "?resource": draw(st.sampled_from(DOCS + GROUPS)),
                    },
                }
            )
    entities = draw(_entities())
    moved = draw(
        st.lists(st.sampled_from(range(len(entities))), min_size=1, max_size=3, unique=True)
    )
    requests = [
        {
            "principal": _uid_json(draw(st.sampled_from(USERS))),
            "action": _uid_json(draw(st.sampled_from(ACTIONS))),
            "resource": _uid_json(draw(st.sampled_from(DOCS))),
            "context": {"flag": draw(st.booleans())},
        }
        for _ in range(8)
    ]
    return {
        "policies": policies,
        "templates": templates,
        "links": links,
        "bundle_entities": [e for i, e in enumerate(entities) if i not in moved],
        "request_entities": [e for i, e in enumerate(entities) if i in moved],
        "requests": requests,
    }


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_scenario())
def test_random_policy_sets_sliced_equal_unsliced(scenario: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        text = "\n".join(scenario["policies"])
        text += "\n" + "\n".join(f'@id("t{n}")\n{t}' for n, t in enumerate(scenario["templates"]))
        (root / "policies.cedar").write_text(text)
        (root / "entities.json").write_text(json.dumps(scenario["bundle_entities"]))
        if scenario["links"]:
            (root / "links.json").write_text(json.dumps(scenario["links"]))
        bundle = load_bundle(root)
        assert bundle.index is not None
        extra = json.dumps(scenario["request_entities"]) if scenario["request_entities"] else None
        for request in scenario["requests"]:
            expected = reference(bundle, request, extra)
            for strategy in STRATEGIES:
                with merging(strategy):
                    assert sliced(bundle, request, extra) == expected, strategy


def _bundle(root: Path, policies: str, entities: list[dict[str, Any]]) -> CompiledBundle:
    (root / "policies.cedar").write_text(policies)
    (root / "entities.json").write_text(json.dumps(entities))
    return load_bundle(root)


def _request(principal: str, action: str, resource: str) -> dict[str, Any]:
    return {
        "principal": _uid_json(principal),
        "action": _uid_json(action),
        "resource": _uid_json(resource),
        "context": {},
    }


def test_policy_pinned_to_principal_and_resource_is_selected_by_resource_uid(
    tmp_path: Path,
) -> None:
    bundle = _bundle(
        tmp_path,
        'permit (principal == User::"u0", action, resource == Doc::"d1");',
        [],
    )
    other = _request('User::"u0"', 'Action::"read"', 'Doc::"d0"')
    pinned = _request('User::"u0"', 'Action::"read"', 'Doc::"d1"')
    assert sliced(bundle, other, None)[0] is False  # warms the slice cache for Doc
    assert (
        sliced(bundle, pinned, None)
        == reference(bundle, pinned, None)
        == (
            True,
            {"policies.cedar#0"},
            set(),
        )
    )


def test_request_entities_reach_bundle_entities_through_attribute_chains(
    tmp_path: Path, strategy: str
) -> None:
    bundle = _bundle(
        tmp_path,
        "permit (principal, action, resource) when { resource.owner.manager.level > 2 };",
        [
            {
                "uid": _uid_json('User::"u1"'),
                "attrs": {"manager": {"__entity": _uid_json('User::"u2"')}, "level": 0},
                "parents": [],
            },
            {"uid": _uid_json('User::"u2"'), "attrs": {"level": 3}, "parents": []},
        ],
    )
    request = _request('User::"u0"', 'Action::"read"', 'Doc::"d0"')
    doc = [
        {
            "uid": _uid_json('Doc::"d0"'),
            "attrs": {"owner": {"__entity": _uid_json('User::"u1"')}},
            "parents": [],
        }
    ]
    assert sliced(bundle, request, json.dumps(doc)) == reference(bundle, request, json.dumps(doc))
    assert sliced(bundle, request, json.dumps(doc))[0] is True


def test_request_entities_see_ancestors_of_bundle_parents(tmp_path: Path, strategy: str) -> None:
    bundle = _bundle(
        tmp_path,
        'permit (principal in Group::"g0", action, resource);',
        [
            {"uid": _uid_json('Group::"g1"'), "attrs": {}, "parents": [_uid_json('Group::"g2"')]},
            {"uid": _uid_json('Group::"g2"'), "attrs": {}, "parents": [_uid_json('Group::"g0"')]},
        ],
    )
    request = _request('User::"u0"', 'Action::"read"', 'Doc::"d0"')
    user = [{"uid": _uid_json('User::"u0"'), "attrs": {}, "parents": [_uid_json('Group::"g1"')]}]
    assert sliced(bundle, request, json.dumps(user))[0] is True
    assert sliced(bundle, request, json.dumps(user)) == reference(bundle, request, json.dumps(user))


def test_policy_literals_keep_their_data(tmp_path: Path, strategy: str) -> None:
    bundle = _bundle(
        tmp_path,
        'permit (principal, action, resource) when { User::"boss".level > principal.level };',
        [{"uid": _uid_json('User::"boss"'), "attrs": {"level": 9}, "parents": []}],
    )
    request = _request('User::"u0"', 'Action::"read"', 'Doc::"d0"')
    user = [{"uid": _uid_json('User::"u0"'), "attrs": {"level": 1}, "parents": []}]
    assert sliced(bundle, request, json.dumps(user))[0] is True


def test_request_entity_redefining_the_action_hierarchy_is_exact(
    tmp_path: Path, strategy: str
) -> None:
    bundle = _bundle(tmp_path, 'permit (principal, action in Action::"readers", resource);', [])
    request = _request('User::"u0"', 'Action::"read"', 'Doc::"d0"')
    action = [
        {
            "uid": _uid_json('Action::"read"'),
            "attrs": {},
            "parents": [_uid_json('Action::"readers"')],
        }
    ]
    assert sliced(bundle, request, json.dumps(action))[0] is True
    assert sliced(bundle, request, None)[0] is False
