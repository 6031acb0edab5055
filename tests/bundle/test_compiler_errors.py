"""Compile errors as a user reads them: the file, the line, and what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdp.bundle import load_bundle
from pdp.errors import BundleError
from tests.support.bundles import OWNER_READS, SCHEMA, write_bundle


def problems_of(tmp_path: Path, files: dict[str, str]) -> list[str]:
    """Every problem of the bundle made of `files`, as `file:line[:col]: message` text."""
    with pytest.raises(BundleError) as error:
        load_bundle(write_bundle(tmp_path / "bundle", files))
    return [str(problem) for problem in error.value.problems]


# --- policies ---------------------------------------------------------------------------


def test_syntax_error_in_second_policy_names_file_and_statement_start(tmp_path: Path) -> None:
    broken = (
        OWNER_READS
        + '\n// A broken rule: the comparison has no right-hand side.\n@id("broken")\n'
        + "permit (principal, action, resource)\nwhen { resource.owner == };\n"
    )
    assert problems_of(tmp_path, {"orders/read.cedar": broken}) == [
        "orders/read.cedar:10:1: invalid policy: unexpected token `}`"
    ]


def test_syntax_errors_in_several_files_are_all_reported(tmp_path: Path) -> None:
    files = {
        "a.cedar": "permit (principal, action resource);\n",
        "b.cedar": "\n\n  permit (principal, action, resource) when { true }\n",
        "c.cedar": OWNER_READS,
    }
    assert problems_of(tmp_path, files) == [
        "a.cedar:1:1: invalid policy: unexpected token `resource`",
        "b.cedar:3:3: invalid policy: unexpected end of input",
    ]


def test_duplicate_id_across_files_names_both(tmp_path: Path) -> None:
    files = {
        "orders/read.cedar": OWNER_READS,
        "support/read.cedar": "// copied and forgot to rename\n\n" + OWNER_READS,
    }
    assert problems_of(tmp_path, files) == [
        "support/read.cedar:3: duplicate policy id 'owner-reads' "
        "(first defined at orders/read.cedar:1)"
    ]


def test_annotated_id_may_not_take_a_positional_id(tmp_path: Path) -> None:
    text = (
        'permit (principal, action, resource);\n@id("a.cedar#0")\n'
        "forbid (principal, action, resource);\n"
    )
    assert problems_of(tmp_path, {"a.cedar": text}) == [
        "a.cedar:2: duplicate policy id 'a.cedar#0' (first defined at a.cedar:1)"
    ]


def test_empty_id_annotation(tmp_path: Path) -> None:
    text = (
        'permit (principal, action, resource);\n\n@id(" ")\npermit (principal, action, resource);\n'
    )
    assert problems_of(tmp_path, {"a.cedar": text}) == [
        "a.cedar:3: @id annotation must not be empty"
    ]


# --- schema validation of policies ------------------------------------------------------


COLOUR_CHECK = """\
@id("colour-check")
permit (principal is User, action == Action::"readOrder", resource is Order)
when { resource.colour == "red" };
"""


def test_schema_violations_name_file_line_and_bundle_policy_id(tmp_path: Path) -> None:
    files = {
        "orders.cedarschema": SCHEMA,
        "a/first.cedar": 'permit (principal is User, action == Action::"readOrder", resource);\n',
        "b/second.cedar": OWNER_READS + "\n" + COLOUR_CHECK,
        "c/third.cedar": (
            '// not in the schema\nforbid (principal, action == Action::"shipOrder", resource);\n'
        ),
    }
    assert problems_of(tmp_path, files) == [
        "b/second.cedar:9: schema validation: for policy `colour-check`, attribute `colour` on "
        "entity type `Order` not found",
        "c/third.cedar:2: schema validation: for policy `c/third.cedar#0`, unrecognized action "
        '`Action::"shipOrder"`',
        "c/third.cedar:2: schema validation: for policy `c/third.cedar#0`, unable to find an "
        "applicable action given the policy scope constraints",
    ]


def test_validation_off_loads_what_strict_refuses(tmp_path: Path) -> None:
    files = {"orders.cedarschema": SCHEMA, "p.cedar": COLOUR_CHECK}
    assert problems_of(tmp_path / "strict", files) == [
        "p.cedar:1: schema validation: for policy `colour-check`, attribute `colour` on entity "
        "type `Order` not found"
    ]
    relaxed = load_bundle(
        write_bundle(tmp_path / "off", {**files, "manifest.yaml": "validation: off\n"})
    )
    assert relaxed.validation == "off"
    assert relaxed.schema is not None  # still parses entities and context
    assert [p.id for p in relaxed.policies] == ["colour-check"]


# --- the schema itself ------------------------------------------------------------------


def test_schema_syntax_error_points_at_the_declaration(tmp_path: Path) -> None:
    schema = SCHEMA + "\nentity Refund = {\n  order: Order\n  amount: Long,\n};\n"
    assert problems_of(tmp_path, {"s.cedarschema": schema, "p.cedar": OWNER_READS}) == [
        "s.cedarschema:22: invalid schema: error parsing schema: unexpected token `amount`"
    ]


def test_schema_unknown_type_points_at_its_use_not_a_comment(tmp_path: Path) -> None:
    schema = "// Usr was renamed to User\nentity User;\nentity Order = { owner: Usr };\n"
    assert problems_of(tmp_path, {"s.cedarschema": schema, "p.cedar": OWNER_READS}) == [
        "s.cedarschema:3: invalid schema: failed to resolve type: Usr"
    ]


def test_schema_name_declared_twice_points_at_the_second(tmp_path: Path) -> None:
    schema = "entity User;\nentity Order;\n\nentity User;\n"
    assert problems_of(tmp_path, {"s.cedarschema": schema, "p.cedar": OWNER_READS}) == [
        "s.cedarschema:4: invalid schema: error parsing schema: `User` is declared twice"
    ]


def test_json_schema_error_has_line_and_column(tmp_path: Path) -> None:
    schema = '{\n  "": {\n    "entityTypess": {},\n    "actions": {}\n  }\n}\n'
    assert problems_of(tmp_path, {"s.cedarschema.json": schema, "p.cedar": OWNER_READS}) == [
        "s.cedarschema.json:3:18: invalid schema: unknown field `entityTypess`, expected one of "
        "`commonTypes`, `entityTypes`, `actions`, `annotations`"
    ]


# --- entities.json ----------------------------------------------------------------------


def test_entities_json_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    entities = (
        '[\n  {"uid": {"type": "Tenant", "id": "acme"}, "attrs": {}, "parents": []}\n'
        '  {"uid": {"type": "Tenant", "id": "globex"}, "attrs": {}, "parents": []}\n]\n'
    )
    files = {"orders.cedarschema": SCHEMA, "p.cedar": OWNER_READS, "entities.json": entities}
    assert problems_of(tmp_path, files) == [
        "entities.json:3:3: invalid JSON: Expecting ',' delimiter"
    ]


def test_entities_json_must_be_an_array(tmp_path: Path) -> None:
    files = {"p.cedar": OWNER_READS, "entities.json": '{"uid": {"type": "T", "id": "a"}}'}
    assert problems_of(tmp_path, files) == ["entities.json:1: must be a JSON array"]


ENTITIES_WITH_MISTAKES = """\
[
  {"uid": {"type": "Tenant", "id": "acme"}, "attrs": {}, "parents": []},
  {
    "uid": {"type": "Order", "id": "o-1"},
    "attrs": {
      "owner": {"__entity": {"type": "User", "id": "42"}},
      "tenant": {"__entity": {"type": "Tenant", "id": "acme"}},
      "status": "placed",
      "total_cents": "12.50"
    },
    "parents": [{"type": "Tenant", "id": "acme"}]
  },
  {"uid": {"type": "User", "id": "42"}, "attrs": {"nickname": "d"}, "parents": []},
  {"uid": {"type": "User", "id": "43"}, "attrs": {}, "parents": [{"type": "Order", "id": "o-1"}]},
  {"uid": {"type": "Order", "id": "o-2"}, "attrs": {"status": "placed"}, "parents": []},
  {"uid": {"type": "Tennant", "id": "globex"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Tenant", "id": "acme"}, "attrs": {}, "parents": []}
]
"""


def test_entities_not_conforming_to_schema_name_line_uid_and_part(tmp_path: Path) -> None:
    files = {
        "orders.cedarschema": SCHEMA,
        "p.cedar": OWNER_READS,
        "entities.json": ENTITIES_WITH_MISTAKES,
    }
    assert problems_of(tmp_path, files) == [
        'entities.json:3: entity Order::"o-1": entity does not conform to the schema '
        "(attribute `total_cents`: the schema expects a Long)",
        'entities.json:13: entity User::"42": error during entity deserialization '
        "(attribute `nickname`: not declared for User in the schema, or a value of the wrong "
        "type)",
        'entities.json:14: entity User::"43": entity does not conform to the schema '
        '(the schema does not allow Order::"o-1" as a parent of User)',
        'entities.json:15: entity Order::"o-2": entity does not conform to the schema '
        "(a required attribute may be missing, or several attributes are wrong)",
        'entities.json:16: entity Tennant::"globex": error during entity deserialization '
        "(entity type Tennant is not declared in the schema)",
        'entities.json:17: entity Tenant::"acme": duplicate entity uid (first at line 2)',
    ]


def test_identical_duplicate_entities_are_refused(tmp_path: Path) -> None:
    # cedarpy accepts an exact repeat; in a reviewed file it is a merge or copy mistake.
    tenant = '  {"uid": {"type": "Tenant", "id": "acme"}, "attrs": {}, "parents": []}'
    entities = f"[\n{tenant},\n{tenant}\n]\n"
    for schema in ({"orders.cedarschema": SCHEMA}, {}):
        files = {**schema, "p.cedar": OWNER_READS, "entities.json": entities}
        assert problems_of(tmp_path / str(len(schema)), files) == [
            'entities.json:3: entity Tenant::"acme": duplicate entity uid (first at line 2)'
        ]


def test_differing_duplicate_entities_are_refused_without_schema(tmp_path: Path) -> None:
    entities = (
        '[\n  {"uid": {"type": "T", "id": "a"}, "attrs": {}, "parents": []},\n'
        '  {"uid": {"type": "T", "id": "a"}, "attrs": {"x": 1}, "parents": []}\n]\n'
    )
    assert problems_of(tmp_path, {"p.cedar": OWNER_READS, "entities.json": entities}) == [
        'entities.json:3: entity T::"a": duplicate entity uid (first at line 2)'
    ]


def test_policy_and_entity_errors_are_reported_in_one_run(tmp_path: Path) -> None:
    files = {
        "orders.cedarschema": SCHEMA,
        "p.cedar": "permit (principal, action, resource)\n",
        "entities.json": (
            '[\n  {"uid": {"type": "Tennant", "id": "a"}, "attrs": {}, "parents": []}\n]'
        ),
    }
    assert problems_of(tmp_path, files) == [
        "p.cedar:1:1: invalid policy: unexpected end of input",
        'entities.json:2: entity Tennant::"a": error during entity deserialization '
        "(entity type Tennant is not declared in the schema)",
    ]


# --- input that would crash a parser -----------------------------------------------------

DEEP = 5000  # far past any parser's recursion limit


def test_brackets_nested_past_cedars_parser_stack_are_refused_not_a_crash(
    tmp_path: Path,
) -> None:
    # cedarpy's parser dies with SIGSEGV (the whole server) at about 700 nested brackets;
    # `when {` is the first level.
    nested = "(" * 1000 + "true" + ")" * 1000
    text = f"permit (principal, action, resource)\nwhen {{ {nested} }};\n"
    assert problems_of(tmp_path, {"p.cedar": text}) == [
        "p.cedar:2:207: invalid policy: brackets nested more than 200 levels deep"
    ]


def test_other_nesting_past_cedars_parser_stacks_is_refused_not_a_crash(
    tmp_path: Path,
) -> None:
    # cedarpy dies at about 4,500 nested ifs in a policy and 3,000 nested records in a schema.
    ifs = "if true then " * 5000 + "true" + " else false" * 5000
    policy = f"permit (principal, action, resource)\nwhen {{ {ifs} }};\n"
    (problem,) = problems_of(tmp_path / "ifs", {"p.cedar": policy})
    assert problem.startswith("p.cedar:2:")
    assert problem.endswith(": invalid policy: more than 2000 operators in one policy")
    records = "entity A = " + "{ a: " * 3000 + "Long" + "}" * 3000 + ";\n"
    assert problems_of(tmp_path / "schema", {"s.cedarschema": records, "p.cedar": OWNER_READS}) == [
        "s.cedarschema:1:1012: invalid schema: brackets nested more than 200 levels deep"
    ]


def test_a_long_operator_chain_is_valid_cedar_and_loads(tmp_path: Path) -> None:
    # Cedar's JSON form stops at 128 levels (each && of the chain is one); pdp then builds
    # the set from the policy text, as Cedar accepts it (tests/bundle/test_deep_policies.py).
    chain = " && ".join(["context.a == 1"] * 70)
    text = (
        OWNER_READS
        + f'\n@id("long-chain")\npermit (principal, action, resource)\nwhen {{ {chain} }};\n'
    )
    files = {"a.cedar": "forbid (principal, action, resource);\n", "b.cedar": text}
    bundle = load_bundle(write_bundle(tmp_path / "long" / "bundle", files))
    assert "long-chain" in [policy.id for policy in bundle.policies]
    huge = " && ".join(["true"] * 600)  # deeper than Python's json parser goes
    assert problems_of(
        tmp_path / "huge", {"p.cedar": f"permit (principal, action, resource) when {{ {huge} }};\n"}
    ) == ["p.cedar: invalid policy: an expression nested too deeply (hundreds of operators)"]


@pytest.mark.parametrize("name", ["entities.json", "links.json"])
def test_json_nested_past_pythons_recursion_limit_is_a_load_error(
    tmp_path: Path, name: str
) -> None:
    files = {"p.cedar": OWNER_READS, name: "[" * DEEP + "]" * DEEP}
    assert problems_of(tmp_path, files) == [f"{name}:1: invalid JSON: nested too deeply"]


def test_a_manifest_yaml_refuses_is_a_located_load_error(tmp_path: Path) -> None:
    control = {"p.cedar": OWNER_READS, "manifest.yaml": "name: x\nrevision: r1\x7f\n"}
    assert problems_of(tmp_path / "control", control) == [
        "manifest.yaml:2:13: invalid YAML: special characters are not allowed (#x007f)"
    ]
    deep = {"p.cedar": OWNER_READS, "manifest.yaml": "name: " + "[" * DEEP + "]" * DEEP}
    assert problems_of(tmp_path / "deep", deep) == [
        "manifest.yaml:1: invalid YAML: nested too deeply"
    ]
