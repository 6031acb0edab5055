"""pdp.yamlsrc: the one YAML loader and reader (manifest.yaml, routes.yaml, test suites)."""

from __future__ import annotations

import pytest

from pdp.errors import Problem, YamlError
from pdp.yamlsrc import Reader, YList, YMap, line_of, load


def problem_of(text: str) -> str:
    with pytest.raises(YamlError) as caught:
        load("f.yaml", text)
    [problem] = caught.value.problems
    return str(problem)


def test_containers_know_their_lines_and_scalars_their_text() -> None:
    doc = load("f.yaml", "name: x\nrevision: 1.10\nitems:\n  - a\n  - {b: 0123}\nday: 2026-11-30\n")
    assert isinstance(doc, YMap) and isinstance(doc["items"], YList)
    assert (doc.line, doc.lines["items"], line_of(doc["items"], 1)) == (1, 3, 5)
    assert doc["revision"] == 1.1 and doc.texts["revision"] == "1.10"  # as written, kept
    assert doc["items"][1].texts["b"] == "0123"
    assert doc["day"] == "2026-11-30"  # a date stays the text written
    assert "items" not in doc.texts  # only scalars have a text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\nb: 2\na: 3\n", "f.yaml:3:1: invalid YAML: duplicate key 'a' (first on line 1)"),
        ("? [a]\n: b\n", "f.yaml:1:3: invalid YAML: a mapping key must be a plain value"),
        ("a: x\x7f\n", "f.yaml:1:5: invalid YAML: special characters are not allowed (#x007f)"),
        ("a: " + "[" * 400 + "]" * 400, "f.yaml:1: invalid YAML: nested too deeply"),
        ("a: " + "[" * 5000 + "]" * 5000, "f.yaml:1: invalid YAML: nested too deeply"),
        ("a: !!python/object:os.system x\n", "f.yaml:1:4: invalid YAML: could not determine"),
    ],
)
def test_every_refusal_is_one_located_problem(text: str, expected: str) -> None:
    assert problem_of(text).startswith(expected)


def test_a_section_names_values_by_their_place_and_line() -> None:
    doc = load("r.yaml", "jwt:\n  issuers: 3\n  cache: {ttl: x}\n  typo: 1\n")
    reader = Reader("r.yaml")
    jwt = reader.section(doc, "").child("jwt")
    jwt.only("issuers", "cache")
    assert jwt.items("issuers") == []
    assert jwt.child("cache").number("ttl", 60.0) == 60.0
    assert jwt.child("absent").string("x", required=True) is None  # an absent section is quiet
    assert [str(p) for p in reader.problems] == [
        "r.yaml:4: jwt.typo: unknown key (allowed: issuers, cache)",
        "r.yaml:2: jwt.issuers must be a list",
        "r.yaml:3: jwt.cache.ttl must be a number",
    ]


def test_a_reader_records_problems_against_containers() -> None:
    doc = load("s.yaml", "cases:\n  - name: 1\n")
    reader = Reader("s.yaml")
    case = reader.mapping(doc["cases"], 0, "case 0")
    assert case is not None and reader.text(case, "name", "name") is None
    assert reader.problems == [Problem("s.yaml", "name must be a non-empty string, not int 1", 2)]
