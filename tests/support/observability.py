"""A small bundle, request builders, log line readers and a metrics scraper for these tests."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format, struct_pb2
from prometheus_client.parser import text_string_to_metric_families

from pdp.v1 import authorizer_pb2 as pb
from tests.support.polling import wait_for
from tests.support.server import ServerProcess

TIMEOUT = 10.0

POLICIES = """\
@id("alice-reads")
permit(principal == User::"alice", action == Action::"read", resource);

@id("small-payments")
permit(principal, action == Action::"pay", resource)
when { context has amount && context.amount < 100 };

@id("no-banned")
forbid(principal, action, resource)
when { context has banned && context.banned };
"""


def make_bundle(
    root: Path, decision_log: dict[str, Any] | None = None, revision: str = "r1"
) -> Path:
    """A schema-less bundle named `obs` at `root`, with an optional decision_log section."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "policies.cedar").write_text(POLICIES)
    manifest: dict[str, Any] = {"name": "obs", "revision": revision}
    if decision_log is not None:
        manifest["decision_log"] = decision_log
    (root / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return root


def uid(text: str) -> pb.EntityUid:
    """`Type::id` (no quotes) as an EntityUid."""
    entity_type, _, entity_id = text.rpartition("::")
    return pb.EntityUid(type=entity_type, id=entity_id)


def request(
    principal: str = "User::alice",
    action: str = "Action::read",
    resource: str = "Doc::d1",
    context: dict[str, Any] | None = None,
    entities_json: list[dict[str, Any]] | None = None,
) -> pb.IsAuthorizedRequest:
    message = pb.IsAuthorizedRequest(
        principal=uid(principal), action=uid(action), resource=uid(resource)
    )
    if context is not None:
        message.context.CopyFrom(json_format.ParseDict(context, struct_pb2.Struct()))
    if entities_json is not None:
        message.entities_json = json.dumps(entities_json)
    return message


def parse_lines(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Every line as a JSON object; fails on any line that is not one whole object."""
    entries = []
    for line in lines:
        assert line.endswith("\n"), f"unterminated line: {line[:200]!r}"
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        entries.append(entry)
    return entries


def log_entries(server: ServerProcess, count: int, since: int = 0) -> list[dict[str, Any]]:
    """The first `count` decision log lines on the server's stdout after its first `since`
    (a server shared by tests: `since` is how many it had written before), once written."""
    end = since + count
    wait_for(lambda: len(server.stdout_lines) >= end, what=f"{count} decision log lines")
    return parse_lines(server.stdout_lines[since:end])


def file_entries(path: Path, count: int) -> list[dict[str, Any]]:
    """The decision log lines of a file, once at least `count` are there."""

    def lines() -> list[str] | None:
        text = path.read_text() if path.exists() else ""
        found = text.splitlines(keepends=True)
        return found if len(found) >= count else None

    return parse_lines(wait_for(lines, what=f"{count} lines in {path}"))


def metrics_address(server: ServerProcess) -> str:
    """Where `--metrics` listens, from the server's `metrics_listening` log event."""
    for line in server.stderr_lines:
        if '"metrics_listening"' in line:
            return json.loads(line)["address"]
    raise AssertionError(f"no metrics_listening event in:\n{server.stderr}")


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(address: str) -> Samples:
    """GET /metrics over HTTP and parse it: (sample name, labels) -> value."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    with opener.open(f"http://{address}/metrics", timeout=TIMEOUT) as response:
        assert response.status == 200
        text = response.read().decode("utf-8")
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, sample: str, **labels: str) -> float:
    """One sample's value; 0 when the series is absent."""
    return samples.get((sample, frozenset(labels.items())), 0.0)


def series(samples: Samples, sample: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every series of one sample name, by labels."""
    return {labels: v for (name, labels), v in samples.items() if name == sample}
