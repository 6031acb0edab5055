"""Every relative link and #anchor in the documentation resolves; the README stays short."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README_MAX_LINES = 200
# Pages linked before they land. The lead removes an entry at merge; its links are then
# checked like any other (strict xfail: once the page exists, the mark itself fails).
PENDING: dict[str, str] = {}

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
)
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"", re.I)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass(frozen=True)
class Link:
    doc: str  # the page, relative to the repository
    line: int
    target: str  # as written

    def __str__(self) -> str:
        return f"{self.doc}:{self.line} -> {self.target}"


def documents() -> list[Path]:
    pages = [REPO / "README.md", REPO / "SECURITY.md", REPO / "bench" / "README.md"]
    return pages + sorted((REPO / "docs").glob("*.md"))


def prose_lines(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, with inline code spans blanked."""
    lines: list[tuple[int, str]] = []
    fence = ""
    for number, line in enumerate(text.splitlines(), 1):
        match = _FENCE.match(line)
        if match and (not fence or match.group(1) == fence):
            fence = "" if fence else match.group(1)
            continue
        if not fence:
            lines.append((number, _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)))
    return lines


def links_in(text: str, doc: str) -> list[Link]:
    found = []
    for number, line in prose_lines(text):
        targets = [m.group(1) for m in _INLINE_LINK.finditer(line)]
        reference = _REFERENCE.match(line)
        if reference:
            targets.append(reference.group(1))
        found += [Link(doc, number, target) for target in targets]
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lowercased, punctuation removed,
    spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors_of(text: str) -> set[str]:
    anchors: set[str] = set()
    counts: dict[str, int] = {}
    for _, line in prose_lines(text):
        anchors.update(_HTML_ANCHOR.findall(line))
    fence = ""
    for line in text.splitlines():  # headings keep their code spans: `x` renders as x
        match = _FENCE.match(line)
        if match and (not fence or match.group(1) == fence):
            fence = "" if fence else match.group(1)
            continue
        heading = None if fence else _HEADING.match(line)
        if heading is None:
            continue
        base = slug(heading.group(2))
        seen = counts.get(base, 0)
        counts[base] = seen + 1
        anchors.add(base if seen == 0 else f"{base}-{seen}")
    return anchors


def problem(link: Link, root: Path = REPO) -> str | None:
    """Why `link` does not resolve, or None when it does."""
    if _SCHEME.match(link.target):
        return None  # http(s), mailto: not checked here
    path_part, _, anchor = link.target.partition("#")
    source = root / link.doc
    target = (source.parent / path_part).resolve() if path_part else source
    if not target.is_relative_to(root.resolve()):
        return f"{link}: leaves the repository"
    if not target.exists():
        return f"{link}: {target.relative_to(root.resolve())} does not exist"
    if anchor:
        if target.suffix != ".md":
            return f"{link}: an anchor into a file that is not Markdown"
        if anchor not in anchors_of(target.read_text(encoding="utf-8")):
            return f"{link}: no heading with anchor #{anchor}"
    return None


def relative_links() -> list[Link]:
    links = []
    for page in documents():
        doc = page.relative_to(REPO).as_posix()
        links += links_in(page.read_text(encoding="utf-8"), doc)
    return [link for link in links if not _SCHEME.match(link.target)]


def pending_reason(link: Link) -> str | None:
    path_part = link.target.partition("#")[0]
    if not path_part:
        return None
    target = ((REPO / link.doc).parent / path_part).resolve()
    for pending, reason in PENDING.items():
        if target == (REPO / pending).resolve():
            return reason
    return None


def _cases() -> list[object]:
    cases: list[object] = []
    for link in relative_links():
        reason = pending_reason(link)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        cases.append(pytest.param(link, id=str(link), marks=marks))
    return cases


@pytest.mark.parametrize("link", _cases())
def test_the_link_resolves(link: Link) -> None:
    assert problem(link) is None, problem(link)


def test_there_are_links_to_check() -> None:
    links = relative_links()
    assert len(links) > 50
    assert sum("#" in link.target for link in links) > 20  # anchors are checked too
    assert {link.doc for link in links} >= {"README.md", "SECURITY.md", "docs/README.md"}


def test_the_readme_stays_a_front_door() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"


@pytest.mark.parametrize("index", ["README.md", "docs/README.md"])
def test_every_docs_page_is_linked_from_the_index(index: str) -> None:
    page = REPO / index
    linked = {
        ((page.parent / link.target.partition("#")[0]).resolve())
        for link in links_in(page.read_text(encoding="utf-8"), index)
        if not _SCHEME.match(link.target) and link.target.partition("#")[0]
    }
    pages = {p.resolve() for p in (REPO / "docs").glob("*.md") if p.name != "README.md"}
    pages |= {(REPO / pending).resolve() for pending in PENDING}
    pages.add((REPO / "bench" / "README.md").resolve())
    missing = sorted(str(p.relative_to(REPO)) for p in pages - linked)
    assert not missing, f"{index} does not link {missing}"


# --- the checker itself ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Envoy and Istio (ext_authz)", "envoy-and-istio-ext_authz"),
        ("Masking: `decision_log` in `manifest.yaml`", "masking-decision_log-in-manifestyaml"),
        ("Several cores: `pdp serve --workers N`", "several-cores-pdp-serve---workers-n"),
        ("What pdp trusts, and what it never trusts", "what-pdp-trusts-and-what-it-never-trusts"),
        (
            "The example bundle: an orders API, BOLA and BFLA",
            "the-example-bundle-an-orders-api-bola-and-bfla",
        ),
        (
            "In the application: `pdp.plan.sqlalchemy` and `to_predicate`",
            "in-the-application-pdpplansqlalchemy-and-to_predicate",
        ),
        ("See [the API](api.md) **now**", "see-the-api-now"),
    ],
)
def test_anchors_follow_githubs_rules(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_duplicate_headings_are_numbered_and_code_is_not_a_heading() -> None:
    text = "# Limits\n## Limits\n### Limits\n```sh\n# not a heading\n```\n"
    assert anchors_of(text) == {"limits", "limits-1", "limits-2"}


def test_the_checker_finds_each_kind_of_broken_link(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n## Two words\n", encoding="utf-8")
    page = (
        "[ok](docs/a.md#two-words) [self](#here) [dir](docs/)\n"
        "[gone](docs/b.md) [bad anchor](docs/a.md#three) [out](../x.md)\n"
        "`[in code](docs/nothing.md)` [web](https://example.com/x)\n"
        "# Here\n```\n[in a block](docs/nothing.md)\n```\n[ref]: docs/missing.md\n"
    )
    (tmp_path / "R.md").write_text(page, encoding="utf-8")
    links = links_in(page, "R.md")
    assert [link.target for link in links] == [
        "docs/a.md#two-words",
        "#here",
        "docs/",
        "docs/b.md",
        "docs/a.md#three",
        "../x.md",
        "https://example.com/x",
        "docs/missing.md",
    ]
    broken = {link.target: problem(link, tmp_path) for link in links}
    assert [t for t, p in broken.items() if p] == [
        "docs/b.md",
        "docs/a.md#three",
        "../x.md",
        "docs/missing.md",
    ]
