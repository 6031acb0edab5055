"""Cedar's semantics a plan must keep, case by case, on SQLite, PostgreSQL and in memory.

Every case also runs the three consumers against Cedar's own decision on each row
(`docs.check`), so an assertion here on the plan's shape comes on top of exactness.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from pdp.plan import PlanKind, PlanUnsupported, plan_resources
from pdp.plan.predicate import to_predicate
from pdp.plan.sqlalchemy import to_filter
from tests.support.plan_docs import MAPPING, bundle_of, check, doc, question, ref

PERMIT_ALL = "permit(principal, action, resource);\n"


def _exact(tally) -> None:  # type: ignore[no-untyped-def]
    assert not tally.differences, "\n".join(tally.differences)
    assert tally.sqlite_rows and tally.postgres_rows and tally.predicate_rows


def test_an_erroring_forbid_forbids_nothing(engines: list[sa.Engine]) -> None:
    """`resource.flag` errors where there is no flag: that forbid is skipped, the permit holds."""
    bundle = bundle_of(PERMIT_ALL + "forbid(principal, action, resource) when { resource.flag };")
    rows = [doc("d1", flag=True), doc("d2", flag=False), doc("d3"), doc("d4", name="x")]
    plan, tally, allowed = check(bundle, "u1", rows, engines)
    _exact(tally)
    assert allowed == {"d2", "d3", "d4"}
    assert plan.condition == {
        "op": "not",
        "args": [{"op": "==", "args": [{"attr": ["flag"]}, {"value": True}]}],
    }


def test_a_negated_comparison_keeps_absent_attributes_out(engines: list[sa.Engine]) -> None:
    """`!(resource.level < 5)` is false-or-error, never true, where level is absent."""
    bundle = bundle_of("permit(principal, action, resource) when { !(resource.level < 5) };")
    rows = [doc("d1", level=9), doc("d2", level=1), doc("d3"), doc("d4", level=5)]
    _, tally, allowed = check(bundle, "u1", rows, engines)
    _exact(tally)
    assert allowed == {"d1", "d4"}


def test_a_forbid_unless_erroring_keeps_rows(engines: list[sa.Engine]) -> None:
    """`unless { resource.level > 2 }`: where level is absent the forbid errors and is skipped."""
    bundle = bundle_of(
        PERMIT_ALL + "forbid(principal, action, resource) unless { resource.level > 2 };"
    )
    rows = [doc("d1", level=3), doc("d2", level=1), doc("d3")]
    _, tally, allowed = check(bundle, "u1", rows, engines)
    _exact(tally)
    assert allowed == {"d1", "d3"}


def test_a_principal_missing_from_the_store_has_no_attributes_or_parents(
    engines: list[sa.Engine],
) -> None:
    """Partial evaluation would make `ghost` an unknown; IsAuthorized treats it as empty."""
    bundle = bundle_of(
        "permit(principal, action, resource) when { resource.owner == principal };\n"
        'permit(principal in Tenant::"t1", action, resource);\n'
        "permit(principal, action, resource) when "
        "{ principal has level && resource.level == principal.level };\n"
        "permit(principal, action, resource) when { resource has name || principal.level > 0 };"
    )
    rows = [
        doc("d1", owner=ref("User", "ghost")),
        doc("d2", level=3),
        doc("d3", name="n"),
        doc("d4"),
    ]
    plan, tally, allowed = check(bundle, "ghost", rows, engines)
    _exact(tally)
    assert not plan.unsupported
    assert allowed == {"d1", "d3"}


def test_an_admin_gets_always_allowed_through_and_false(engines: list[sa.Engine]) -> None:
    """Residuals like `resource is Doc && false` must fold, or the forbid guard stays."""
    bundle = bundle_of(
        'permit(principal in Role::"admin", action, resource is Doc);\n'
        'forbid(principal, action, resource is Doc) unless { principal in Role::"admin" };\n'
        "permit(principal, action, resource) when { resource.owner == principal && false };"
    )
    rows = [doc("d1"), doc("d2", owner=ref("User", "u3"))]
    plan, _, allowed = check(bundle, "u3", rows, engines)
    assert plan.kind is PlanKind.ALWAYS_ALLOWED and plan.condition == {"value": True}
    assert allowed == {"d1", "d2"}
    assert str(to_filter(plan, MAPPING).compile()) == "true"
    plan, _, allowed = check(bundle, "u1", rows, engines)
    assert plan.kind is PlanKind.ALWAYS_DENIED and allowed == set()
    assert plan.policies == ("policies.cedar#1",)


@pytest.mark.parametrize(
    ("pattern", "names", "matching"),
    [
        ("a%*", ["a%x", "abx", "A%x", "a%"], {"a%x", "a%"}),
        ("_b", ["_b", "ab", "_B"], {"_b"}),
        ("*\\**", ["x*y", "xy", "*"], {"x*y", "*"}),
        ("a?[c]", ["a?[c]", "ab[c]", "a?c"], {"a?[c]"}),
        ("Bob", ["Bob", "bob", "BOB"], {"Bob"}),
        ("*!*", ["a!b", "ab", "!"], {"a!b", "!"}),
        ("", ["", "x"], {""}),
    ],
)
def test_like_is_case_sensitive_with_only_star_as_wildcard(
    engines: list[sa.Engine], pattern: str, names: list[str], matching: set[str]
) -> None:
    """SQL's `%`, `_`, GLOB's `?` and `[`, and case: none of them is a Cedar wildcard."""
    bundle = bundle_of(
        f'permit(principal, action, resource) when {{ resource.name like "{pattern}" }};'
    )
    rows = [doc(f"d{n}", name=name) for n, name in enumerate(names)] + [doc("none", level=1)]
    _, tally, allowed = check(bundle, "u1", rows, engines)
    _exact(tally)
    assert {r["attrs"]["name"] for r in rows if r["uid"]["id"] in allowed} == matching


def test_hierarchy_through_parent_column_and_join_table(engines: list[sa.Engine]) -> None:
    """`resource in Org::"o1"`: a parent tenant of that org (column), or a group (join table)."""
    bundle = bundle_of(
        'permit(principal, action, resource in Org::"o1");\n'
        'permit(principal, action, resource in Group::"g1");\n'
        "permit(principal, action, resource) when { principal in resource.tenant };\n"
        'permit(principal, action, resource) when { resource.owner in Tenant::"t3" };'
    )
    rows = [
        doc("d1", [("Tenant", "t1")]),
        doc("d2", [("Tenant", "t3")]),
        doc("d3", [("Group", "g2")]),
        doc("d4", [("Tenant", "t3"), ("Group", "g1")]),
        doc("d5", tenant=ref("Tenant", "t2")),
        doc("d6", owner=ref("User", "u3")),
        doc("d7", tenant=ref("Tenant", "t1")),
    ]
    plan, tally, allowed = check(bundle, "u2", rows, engines)
    _exact(tally)
    assert allowed == {"d1", "d3", "d4", "d5", "d6"}
    sql = str(to_filter(plan, MAPPING).compile(compile_kwargs={"literal_binds": True}))
    assert "doc_groups" in sql and "docs.parent_tenant IN" in sql


def test_sets_in_a_join_table(engines: list[sa.Engine]) -> None:
    bundle = bundle_of(
        PERMIT_ALL
        + 'forbid(principal, action, resource) when { resource.tags.contains("secret") };\n'
        + "forbid(principal, action, resource) unless "
        + '{ ["a", "b", "secret"].containsAll(resource.tags) };'
    )
    rows = [
        doc("d1", tags=["a"]),
        doc("d2", tags=["secret"]),
        doc("d3"),
        doc("d4", tags=[]),
        doc("d5", tags=["a", "z"]),
    ]
    _, tally, allowed = check(bundle, "u1", rows, engines)
    _exact(tally)
    assert allowed == {"d1", "d3", "d4"}


def test_closed_parts_left_by_cedar_are_evaluated(engines: list[sa.Engine]) -> None:
    """Cedar keeps `principal.missing` and an overflowing sum unevaluated in residuals."""
    bundle = bundle_of(
        "permit(principal, action, resource) when { resource.flag || principal.missing };\n"
        "permit(principal, action, resource) when "
        "{ resource has name && principal.level + 9223372036854775807 > 0 };\n"
        "permit(principal, action, resource) when { resource has level && context.ok };"
    )
    rows = [doc("d1", flag=True), doc("d2", flag=False), doc("d3", name="x"), doc("d4", level=1)]
    plan, tally, allowed = check(bundle, "u1", rows, engines, context={"ok": True})
    _exact(tally)
    assert allowed == {"d1", "d4"}
    assert not plan.unsupported


def test_unsupported_parts_are_named_and_refused(engines: list[sa.Engine]) -> None:
    bundle = bundle_of(
        "permit(principal, action, resource) when { resource.level + 1 > 3 };\n"
        'permit(principal, action, resource) when { resource.name == "x" };'
    )
    plan, tally, _ = check(bundle, "u1", [doc("d1", level=5)], engines)
    assert plan.kind is PlanKind.CONDITIONAL
    assert [(p.policy, p.reason) for p in plan.unsupported] == [
        ("policies.cedar#0", "arithmetic over the resource")
    ]
    assert plan.unsupported[0].expression == "((resource.level) + 1) <= 3"  # `>` as Cedar has it
    assert tally.unsupported_plans == 1 and not tally.differences
    with pytest.raises(PlanUnsupported, match="arithmetic"):
        to_filter(plan, MAPPING)
    with pytest.raises(PlanUnsupported, match="arithmetic"):
        to_predicate(plan)


def test_an_unsupported_part_that_cannot_matter_is_dropped(engines: list[sa.Engine]) -> None:
    """`false && X`-like residuals fold whatever X is: the plan stays exact and complete."""
    bundle = bundle_of(
        "permit(principal, action, resource) when "
        "{ principal.level > 100 && resource.level + 1 > 3 };\n"
        'permit(principal, action, resource) when { resource.name == "x" };'
    )
    plan, tally, _ = check(bundle, "u1", [doc("d1", name="x"), doc("d2")], engines)
    _exact(tally)
    assert not plan.unsupported


def test_conditions_that_grow_with_every_level_are_cut_off() -> None:
    """T and F of alternating `!`/`||`/`&&` double at each level: the planner names the part
    instead of building (or walking) an exponential tree."""
    expr = "resource.level < 5"
    for level in range(40):
        if level % 2:
            expr = f'(!({expr}) || resource.name == "x{level}")'
        else:
            expr = f"({expr} && resource has name)"
    bundle = bundle_of(f"permit(principal, action, resource) when {{ {expr} }};")
    plan = plan_resources(bundle, question("u1"))
    assert plan.kind is PlanKind.CONDITIONAL
    assert {p.reason for p in plan.unsupported} == {
        "its condition is over 20000 nodes and entities"
    }
    with pytest.raises(PlanUnsupported, match="over 20000 nodes"):
        to_filter(plan, MAPPING)
