"""Generated policy sets and rows: every plan selects exactly the rows Cedar allows.

Hypothesis writes permits and forbids with random `when`/`unless` conditions over the
owner, the tenant hierarchy, numeric and string attributes, sets, `has` and `like`, with
parts that error on some rows (absent attributes, type errors, an overflowing sum) and
parts the planner cannot express (arithmetic over the resource); rows have attributes
present or absent. Each plan runs as a predicate, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.plan_differential import Tally
from tests.support.plan_docs import PRINCIPALS, bundle_of, check, doc, ref

ATOMS = (
    "resource.owner == principal",
    'resource.owner == User::"u1"',
    "resource.owner != principal",
    "resource.tenant == principal.tenant",
    "principal in resource.tenant",
    'resource in Tenant::"t1"',
    'resource in Org::"o1"',
    'resource in Group::"g1"',
    'resource in [Tenant::"t2", Group::"g2"]',
    'resource.owner in Tenant::"t1"',
    'resource.tenant in Org::"o1"',
    "principal in resource",
    'resource == Doc::"d0"',
    "resource is Doc",
    "resource.owner is User",
    "resource.level < 5",
    "resource.level >= principal.level",
    "resource.level > context.level",
    "resource.level <= -1",
    "resource.level == 3",
    "resource.level != 2",
    "resource.name < 3",
    'resource.level like "1*"',
    'resource.name like "a*"',
    'resource.name like "*\\**"',
    'resource.name like "%"',
    'resource.name like "_b"',
    'resource.name like "A?"',
    'resource.name like "[*"',
    'resource.name like ""',
    'resource.name like "*b*"',
    'resource.name == "Bob"',
    "resource has level",
    "resource has tags",
    "resource has nope",
    "resource has name",
    'resource.tags.contains("a")',
    'resource.tags.containsAll(["a", "b"])',
    "resource.tags.containsAny(principal.tags)",
    '["a", "Bob"].contains(resource.name)',
    "resource.tags.isEmpty()",
    '["a", "b", "c"].containsAll(resource.tags)',
    '[User::"u1", User::"u2"].contains(resource.owner)',
    "resource.tags.contains(resource.name)",
    "resource.flag",
    "resource.flag == context.flag",
    "context.flag",
    "principal.missing",
    "principal.level + 9223372036854775807 > 0",
    "resource.nope == 1",
    "resource.level + 1 > 3",
    "resource.flag == (resource.level > 2)",
    "true",
    "false",
)
SCOPES = (
    "principal, action, resource",
    'principal in Tenant::"t1", action, resource',
    'principal == User::"u2", action == Action::"read", resource',
    'principal, action, resource in Org::"o1"',
    'principal, action in [Action::"read"], resource is Doc',
    'principal is User, action, resource is Doc in Tenant::"t1"',
    'principal, action == Action::"write", resource',
)

expressions = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda p: f"({p[0]} && {p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"({p[0]} || {p[1]})"),
        inner.map(lambda x: f"!({x})"),
        st.tuples(inner, inner, inner).map(lambda p: f"(if {p[0]} then {p[1]} else {p[2]})"),
        st.tuples(inner, inner).map(lambda p: f"(({p[0]}) == ({p[1]}))"),
    ),
    max_leaves=6,
)
conditions = st.lists(st.tuples(st.sampled_from(("when", "unless")), expressions), max_size=2)
policies = st.lists(
    st.tuples(st.sampled_from(("permit", "forbid")), st.sampled_from(SCOPES), conditions),
    min_size=1,
    max_size=4,
)
names = st.text(alphabet="aAbB*%_?[!", max_size=4)
attributes = st.fixed_dictionaries(
    {},
    optional={
        "owner": st.sampled_from(PRINCIPALS).map(lambda u: ref("User", u)),
        "tenant": st.sampled_from(("t1", "t2", "t3")).map(lambda t: ref("Tenant", t)),
        "level": st.one_of(st.integers(-3, 9), st.sampled_from((-(2**63), 2**63 - 1))),
        "name": names,
        "flag": st.booleans(),
        "tags": st.lists(st.sampled_from(("a", "b", "c", "Bob", "*")), unique=True, max_size=3),
    },
)
parents = st.tuples(
    st.sampled_from((None, "t1", "t2", "t3")), st.lists(st.sampled_from(("g1", "g2")), unique=True)
)
rows = st.lists(st.tuples(attributes, parents), min_size=1, max_size=10)
contexts = st.fixed_dictionaries({"level": st.integers(-3, 9), "flag": st.booleans()})


def _text(generated: list) -> str:  # type: ignore[type-arg]
    out = []
    for effect, scope, conds in generated:
        body = " ".join(f"{kind} {{ {expr} }}" for kind, expr in conds)
        out.append(f"{effect} ({scope}) {body};")
    return "\n".join(out)


def test_generated_plans_select_exactly_what_cedar_allows(engines: list[sa.Engine]) -> None:
    tally = Tally()

    @settings(
        max_examples=int(os.environ.get("PDP_PLAN_EXAMPLES", "150")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(policies, st.sampled_from(PRINCIPALS), rows, contexts)
    def one(generated: list, principal: str, items: list, context: dict) -> None:  # type: ignore[type-arg]
        with tempfile.TemporaryDirectory() as directory:
            bundle = bundle_of(_text(generated), Path(directory))
        docs = []
        for n, (attrs, (tenant, groups)) in enumerate(items):
            links = ([("Tenant", tenant)] if tenant else []) + [("Group", g) for g in groups]
            docs.append(doc(f"d{n}", links, **attrs))
        check(bundle, principal, docs, engines, context, tally)
        assert not tally.differences, f"{_text(generated)}\n" + "\n".join(tally.differences)

    one()
    print(
        f"\ngenerated plans: {tally.plans} ({tally.unsupported_plans} with unsupported parts, "
        f"refused by both consumers); rows compared: predicate {tally.predicate_rows}, "
        f"SQLite {tally.sqlite_rows}, PostgreSQL {tally.postgres_rows}; "
        f"differences {len(tally.differences)}"
    )
    # Unsupported parts are drawn at random and may not come up in a run; test_plan_semantics
    # pins them case by case. Here: enough plans and rows for the comparison to mean something.
    assert tally.plans >= 100
    assert tally.sqlite_rows > 300 and tally.postgres_rows > 300
