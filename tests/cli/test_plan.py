"""`pdp plan`: the plan, its SQL with a mapping from flags, and exit codes (0, 4, 3, 2)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pdp.cli.main import main
from tests.support.bundles import run_pdp, write_bundle
from tests.support.paths import EXAMPLE_BUNDLE

ORDERS = ["--sql", "sqlite", "--table", "orders", "--column", "owner=owner_id:User"]
ORDERS += ["--column", "tenant=tenant_id:Tenant", "--parent", "Tenant=tenant_id"]


def plan(principal: str, *extra: str, action: str = "listOrders") -> list[str]:
    base = ["plan", str(EXAMPLE_BUNDLE), "--principal", principal, "--action", action]
    return [*base, "--resource-type", "Order", *extra]


def test_the_plan_as_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(plan('User::"42"')) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "kind: CONDITIONAL"
    assert json.loads(out[1].removeprefix("condition: ")) == {
        "op": "==",
        "args": [{"attr": ["owner"]}, {"value": {"__entity": {"type": "User", "id": "42"}}}],
    }
    assert out[2] == "policies: customer-lists-own-orders"
    assert main(plan('User::"admin-ada"', "--json", action='Action::"listOrders"')) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["kind"], answer["condition"]) == ("ALWAYS_ALLOWED", {"value": True})
    assert answer["unsupported"] == [] and answer["resource_type"] == "Order"


@pytest.mark.parametrize(
    ("principal", "sqlite", "postgresql"),
    [
        ('User::"42"', "orders.owner_id = '42'", "orders.owner_id = '42'"),
        (
            'User::"support-sam"',
            "orders.owner_id = 'support-sam' OR orders.tenant_id IN ('acme')",
            "orders.owner_id = 'support-sam' OR orders.tenant_id IN ('acme')",
        ),
        ('User::"admin-ada"', "1 = 1", "true"),
        ('Anonymous::"anonymous"', "0 = 1", "false"),
        ('User::"o\'brien"', "orders.owner_id = 'o''brien'", "orders.owner_id = 'o''brien'"),
    ],
)
def test_sql_per_role_with_the_dialects_own_quoting(
    capsys: pytest.CaptureFixture[str], principal: str, sqlite: str, postgresql: str
) -> None:
    assert main(plan(principal, *ORDERS)) == 0
    assert capsys.readouterr().out == sqlite + "\n"
    dialect = ["postgresql" if a == "sqlite" else a for a in ORDERS]
    assert main(plan(principal, *dialect)) == 0
    assert capsys.readouterr().out == postgresql + "\n"


def test_sql_as_json_with_placeholders_runs_in_sqlite(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(plan('User::"support-sam"', *ORDERS, "--json")) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer == {
        "kind": "CONDITIONAL",
        "sql": "orders.owner_id = ? OR orders.tenant_id IN (?)",
        "params": ["support-sam", "acme"],
    }
    db = sqlite3.connect(":memory:")
    db.execute("create table orders (id text, owner_id text, tenant_id text)")
    db.executemany(
        "insert into orders values (?, ?, ?)",
        [("o1", "42", "acme"), ("o2", "77", "globex"), ("o3", "support-sam", "globex")],
    )
    query = f"select id from orders where {answer['sql']} order by id"
    assert [r[0] for r in db.execute(query, answer["params"])] == ["o1", "o3"]


def test_sets_and_join_tables_from_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The printed SQL, run as printed: join-table subqueries refer to the outer row."""
    bundle = write_bundle(
        tmp_path / "docs",
        {
            "docs.cedar": 'permit(principal, action, resource in Group::"g") '
            'when { resource.tags.contains("public") && resource.level < 3 };',
        },
    )
    args = ["plan", str(bundle), "--principal", 'User::"u"', "--action", "read"]
    args += ["--resource-type", "Doc", "--sql", "sqlite", "--table", "docs"]
    args += ["--column", "level=level:Long"]
    args += ["--set-table", "tags=doc_tags:doc_id:tag:String:has_tags"]
    args += ["--parent-table", "Group=doc_groups:doc_id:group_id"]
    assert main(args) == 0
    where = capsys.readouterr().out.strip()
    db = sqlite3.connect(":memory:")
    db.executescript(
        "create table docs (id text, level integer, has_tags boolean);"
        "create table doc_tags (doc_id text, tag text);"
        "create table doc_groups (doc_id text, group_id text);"
        "insert into docs values ('d1', 1, 1), ('d2', 1, 1), ('d3', 5, 1), ('d4', 1, 0);"
        "insert into doc_tags values ('d1', 'public'), ('d3', 'public'), ('d4', 'public');"
        "insert into doc_groups values ('d1', 'g'), ('d2', 'g'), ('d3', 'g'), ('d4', 'g');"
    )
    assert [r[0] for r in db.execute(f"select id from docs where {where}")] == ["d1"]
    assert main([*args, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["params"] == ["g", "public", 3]
    assert [
        r[0] for r in db.execute(f"select id from docs where {answer['sql']}", answer["params"])
    ] == ["d1"]


def test_a_plan_the_mapping_cannot_express_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    args = plan('User::"support-sam"', "--sql", "sqlite", "--table", "orders")
    assert main([*args, "--column", "owner=owner_id:User"]) == 4
    assert "attribute tenant is not in the mapping" in capsys.readouterr().err


def test_usage_and_bundle_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(plan('User::"42"', "--resource-type", "Nope")) == 2
    assert "--resource-type: entity type `Nope` is not declared in the schema" in (
        capsys.readouterr().err
    )
    assert main(plan('User::"42"', "--context", '{"method": 5}')) == 2
    assert "error: invalid request: --context:" in capsys.readouterr().err
    assert main(plan('User::"42"', "--sql", "sqlite")) == 2
    assert "--sql needs --table" in capsys.readouterr().err
    assert main(plan('User::"42"', "--sql", "sqlite", "--table", "t", "--column", "owner")) == 2
    assert "expected ATTR=COLUMN:TYPE" in capsys.readouterr().err
    broken = write_bundle(tmp_path / "broken", {"a.cedar": "permit(principal"})
    assert (
        main(
            [
                "plan",
                str(broken),
                "--principal",
                'User::"1"',
                "--action",
                "a",
                "--resource-type",
                "T",
            ]
        )
        == 3
    )
    with pytest.raises(SystemExit) as usage:
        main(
            [
                "plan",
                str(EXAMPLE_BUNDLE),
                "--principal",
                "not a uid",
                "--action",
                "a",
                "--resource-type",
                "T",
            ]
        )
    assert usage.value.code == 2


@pytest.mark.slow  # the CLI end to end
def test_through_the_installed_command() -> None:
    result = run_pdp(*plan('User::"42"', *ORDERS))
    assert (result.returncode, result.stdout) == (0, "orders.owner_id = '42'\n")
