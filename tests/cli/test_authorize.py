"""`pdp authorize`: text and JSON output, and its exit codes (0 allow, 5 deny, 3, 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pdp.cli.main import main
from tests.support.bundles import OWNER_READS, SCHEMA, run_pdp, write_bundle

ENTITIES = """\
[
  {"uid": {"type": "Tenant", "id": "acme"}, "attrs": {}, "parents": []},
  {"uid": {"type": "User", "id": "42"}, "attrs": {}, "parents": []},
  {
    "uid": {"type": "Order", "id": "o-1"},
    "attrs": {
      "owner": {"__entity": {"type": "User", "id": "42"}},
      "tenant": {"__entity": {"type": "Tenant", "id": "acme"}},
      "status": "placed",
      "total_cents": 100
    },
    "parents": []
  }
]
"""

GUARDED = OWNER_READS + (
    '\n@id("shipped-is-final")\n'
    'forbid (principal, action == Action::"readOrder", resource is Order)\n'
    'when { resource.status == "shipped" };\n'
)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_bundle(
        tmp_path / "shop",
        {
            "orders.cedarschema": SCHEMA,
            "orders.cedar": GUARDED,
            "entities.json": ENTITIES,
            "manifest.yaml": "name: shop\nrevision: r1\n",
        },
    )


def authorize(bundle: Path, principal: str, resource: str, *extra: str) -> list[str]:
    return [
        "authorize",
        str(bundle),
        "--principal",
        principal,
        "--action",
        'Action::"readOrder"',
        "--resource",
        resource,
        *extra,
    ]


def test_allow_prints_decision_and_policies_exit_0(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(authorize(bundle, 'User::"42"', 'Order::"o-1"')) == 0
    assert capsys.readouterr().out == (
        "decision: allow\ndetermining policies: owner-reads\nbundle revision: r1\n"
    )


def test_deny_exits_5(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(authorize(bundle, 'User::"43"', 'Order::"o-1"')) == 5
    assert capsys.readouterr().out == (
        "decision: deny\ndetermining policies: (none)\nbundle revision: r1\n"
    )


def test_json_output(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(authorize(bundle, 'User::"42"', 'Order::"o-1"', "--json")) == 0
    shown = json.loads(capsys.readouterr().out)
    decision_id = shown.pop("decision_id")
    assert shown == {
        "decision": "allow",
        "determining_policies": ["owner-reads"],
        "erroring_policies": [],
        "errors": [],
        "bundle_revision": "r1",
    }
    assert isinstance(decision_id, str) and len(decision_id) >= 16
    assert main(authorize(bundle, 'User::"43"', 'Order::"o-1"', "--json")) == 5
    assert json.loads(capsys.readouterr().out)["decision_id"] != decision_id


@pytest.mark.parametrize("action", ["readOrder", 'Action::"readOrder"'])
def test_the_action_may_be_a_bare_name_as_in_routes_yaml(
    bundle: Path, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    argv = authorize(bundle, 'User::"42"', 'Order::"o-1"', "--json")
    argv[argv.index("--action") + 1] = action
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["determining_policies"] == ["owner-reads"]
    argv = authorize(bundle, 'User::"43"', 'Order::"o-1"')
    argv[argv.index("--action") + 1] = action
    assert main(argv) == 5


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("Shop::readOrder", "expected an entity uid like User::\"alice\", got 'Shop::readOrder'"),
        ("", 'expected an action name (readOrder) or uid, got ""'),
    ],
)
def test_a_bare_action_with_colons_is_read_as_a_uid(
    bundle: Path, capsys: pytest.CaptureFixture[str], action: str, message: str
) -> None:
    argv = authorize(bundle, 'User::"42"', 'Order::"o-1"')
    argv[argv.index("--action") + 1] = action
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert f"argument --action: {message}" in capsys.readouterr().err


def test_a_namespaced_action_uid_keeps_its_namespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_bundle(
        tmp_path / "ns",
        {"p.cedar": 'permit (principal, action == Shop::Action::"readOrder", resource);'},
    )
    argv = authorize(root, 'User::"42"', 'Order::"o-1"')
    argv[argv.index("--action") + 1] = 'Shop::Action::"readOrder"'
    assert main(argv) == 0
    argv[argv.index("--action") + 1] = "readOrder"  # Action::"readOrder": another action
    assert main(argv) == 5
    capsys.readouterr()


def test_request_entities_and_context(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = json.loads(ENTITIES)[2]
    shipped["uid"]["id"] = "o-2"
    shipped["attrs"]["status"] = "shipped"
    entities = tmp_path / "request-entities.json"
    entities.write_text(json.dumps([shipped]))
    args = authorize(bundle, 'User::"42"', 'Order::"o-2"', "--entities", str(entities), "--json")
    assert main(args) == 5
    assert json.loads(capsys.readouterr().out)["determining_policies"] == ["shipped-is-final"]


def test_request_entity_may_not_change_a_bundle_entity(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Claiming ownership of someone else's order through request data must not work.
    forged = json.loads(ENTITIES)[2]
    forged["attrs"]["owner"]["__entity"]["id"] = "43"
    entities = tmp_path / "forged.json"
    entities.write_text(json.dumps([forged]))
    assert main(authorize(bundle, 'User::"43"', 'Order::"o-1"', "--entities", str(entities))) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(
        'error: invalid request: --entities: duplicate entity entry `Order::"o-1"`'
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ("--context", "{bad"),
            "error: invalid request: --context: key must be a string at line 1 column 2\n",
        ),
        (
            ("--context", '{"x": 1}'),
            "error: invalid request: --context: while parsing context, record attribute `x` "
            "should not exist according to the schema\n",
        ),
        (
            ("--entities", "/nonexistent/e.json"),
            "error: --entities: cannot read /nonexistent/e.json: No such file or directory\n",
        ),
    ],
)
def test_bad_request_input_exits_2_naming_the_flag(
    bundle: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str
) -> None:
    assert main(authorize(bundle, 'User::"42"', 'Order::"o-1"', *extra)) == 2
    assert capsys.readouterr().err == message


def test_request_the_schema_rejects_exits_2(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(authorize(bundle, 'User::"42"', 'User::"42"')) == 2
    assert capsys.readouterr().err == (
        "error: invalid request: --resource: resource type `User` is not valid for "
        '`Action::"readOrder"`\n'
    )


def test_bad_uid_syntax_is_a_usage_error(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(authorize(bundle, "User:42", 'Order::"o-1"'))
    assert exit_.value.code == 2
    assert (
        "argument --principal: expected an entity uid like User::\"alice\", got 'User:42'"
        in capsys.readouterr().err
    )


def test_bundle_that_does_not_load_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_bundle(tmp_path / "b", {"p.cedar": "permit (principal, action, resource"})
    assert main(authorize(root, 'User::"42"', 'Order::"o-1"')) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "p.cedar:1:1: invalid policy: unexpected end of input",
        f"error: bundle {root} does not load (1 problem(s))",
    ]


def test_exit_codes_as_a_subprocess(bundle: Path, tmp_path: Path) -> None:
    allow = run_pdp(*authorize(bundle, 'User::"42"', 'Order::"o-1"', "--json"))
    assert (allow.returncode, json.loads(allow.stdout)["decision"]) == (0, "allow")
    deny = run_pdp(*authorize(bundle, 'User::"43"', 'Order::"o-1"', "--json"))
    assert (deny.returncode, json.loads(deny.stdout)["decision"]) == (5, "deny")
    usage = run_pdp(*authorize(bundle, 'User::"42', 'Order::"o-1"'))
    assert (usage.returncode, usage.stdout) == (2, "")
    assert "argument --principal: expected an entity uid" in usage.stderr
    missing = run_pdp(*authorize(tmp_path / "missing", 'User::"42"', 'Order::"o-1"'))
    assert (missing.returncode, missing.stdout) == (3, "")
