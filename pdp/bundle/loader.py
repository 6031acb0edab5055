"""Reads a bundle directory into plain text files, classified, with warnings for strays."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from pdp.bundle.files import (
    MAX_BUNDLE_BYTES,
    MAX_FILE_BYTES,
    Listing,
    read_content,
    scan_bundle,
    too_large,
)
from pdp.bundle.locate import position
from pdp.decisionlog.masking import LogRules
from pdp.errors import BundleError, FileReadError, Problem

MANIFEST = "manifest.yaml"
ENTITIES = "entities.json"
LINKS = "links.json"
ROUTES = "routes.yaml"
SCHEMA_SUFFIXES = (".cedarschema", ".cedarschema.json")
VALIDATION_MODES = ("strict", "off")
MANIFEST_KEYS = {"name", "revision", "validation", "decision_log"}


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One bundle file: its POSIX path relative to the bundle root, and its text."""

    path: str
    text: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """The bundle's `manifest.yaml`, with defaults for what it leaves out."""

    name: str = ""
    revision: str = ""
    validation: str = "strict"
    raw: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BundleSource:
    """Every content file of a bundle, read once, before anything is parsed by Cedar."""

    root: str
    policies: tuple[SourceFile, ...]
    schema: SourceFile | None
    entities: SourceFile | None
    links: SourceFile | None
    routes: SourceFile | None
    manifest: Manifest
    tests: tuple[SourceFile, ...]
    files: dict[str, str]
    warnings: tuple[Problem, ...]
    digest: str

    @property
    def revision(self) -> str:
        return self.manifest.revision or self.digest

    @property
    def name(self) -> str:
        return self.manifest.name or Path(self.root).name


def read_bundle(root: str | os.PathLike[str]) -> BundleSource:
    """Read and classify every content file of the bundle at `root`.

    Raises BundleError when the directory is missing or empty, a content entry cannot be
    read (a dangling link, a link out of the bundle, a file over the size limits), the
    manifest is invalid, or there is more than one schema. Cedar parsing happens later.
    """
    base = Path(root)
    if not base.is_dir():
        raise BundleError([Problem(str(root), _not_a_directory(base))])
    listing = scan_bundle(base)
    problems: list[Problem] = list(listing.problems)
    warnings: list[Problem] = []
    files: dict[str, str] = {}
    for rel, data in _read_all(listing, str(root), problems).items():
        try:
            files[rel] = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem(rel, f"file is not UTF-8 text (byte {exc.start})"))
    if not files and not problems:
        raise BundleError([Problem(str(root), "bundle directory is empty")])

    policies, schemas, tests = [], [], []
    special: dict[str, SourceFile] = {}
    for rel, text in files.items():
        source = SourceFile(rel, text)
        name = PurePosixPath(rel).name
        if rel.endswith(".cedar"):
            policies.append(source)
        elif rel.endswith(SCHEMA_SUFFIXES):
            schemas.append(source)
        elif rel in (MANIFEST, ENTITIES, LINKS, ROUTES):
            special[rel] = source
        elif rel.startswith("tests/") and name.endswith((".yaml", ".yml")):
            tests.append(source)
        elif not _is_auxiliary(rel):
            warnings.append(Problem(rel, _unknown_file_message(rel), severity="warning"))
    if len(schemas) > 1:
        names = ", ".join(s.path for s in schemas)
        problems.append(Problem(schemas[1].path, f"a bundle has at most one schema; found {names}"))
    if not policies and not problems:
        problems.append(Problem(str(root), "bundle has no .cedar policy files"))

    manifest = Manifest()
    if MANIFEST in special:
        manifest, manifest_problems = _parse_manifest(special[MANIFEST])
        problems.extend(p for p in manifest_problems if p.severity == "error")
        warnings.extend(p for p in manifest_problems if p.severity == "warning")
    if problems:
        raise BundleError(problems, tuple(warnings))

    return BundleSource(
        root=str(base),
        policies=tuple(policies),
        schema=schemas[0] if schemas else None,
        entities=special.get(ENTITIES),
        links=special.get(LINKS),
        routes=special.get(ROUTES),
        manifest=manifest,
        tests=tuple(tests),
        files=files,
        warnings=tuple(warnings),
        digest=content_digest(files),
    )


def _not_a_directory(path: Path) -> str:
    if path.is_file():
        hint = path.parent.as_posix() if path.parent != Path() else "."
        return f"is a file, not a bundle directory (did you mean its directory, {hint}?)"
    if path.exists():
        return "is not a directory; a bundle is a directory"
    if path.is_symlink():
        return "bundle directory does not exist (a dangling symlink)"
    return "bundle directory does not exist"


def _read_all(listing: Listing, root: str, problems: list[Problem]) -> dict[str, bytes]:
    """The bytes of every listed file, sizes checked with `stat` first: a file over
    MAX_FILE_BYTES, or a bundle over MAX_BUNDLE_BYTES, is a problem and is never read."""
    small = []
    for file in listing.files:
        if file.size > MAX_FILE_BYTES:
            problems.append(Problem(file.path, too_large(file.size, MAX_FILE_BYTES)))
        else:
            small.append(file)
    total = sum(f.size for f in small)
    if total > MAX_BUNDLE_BYTES:
        problems.append(Problem(root, _bundle_too_large(total, len(small))))
        return {}
    read: dict[str, bytes] = {}
    total = 0
    for file in small:
        try:
            data = read_content(file, MAX_FILE_BYTES)
        except FileReadError as exc:
            problems.append(Problem(file.path, str(exc)))
            continue
        total += len(data)
        if total > MAX_BUNDLE_BYTES:  # files grew after they were listed
            problems.append(Problem(root, _bundle_too_large(total, len(read) + 1)))
            return {}
        read[file.path] = data
    return read


def _bundle_too_large(total: int, count: int) -> str:
    return (
        f"bundle is larger than the limit of {MAX_BUNDLE_BYTES} bytes in total "
        f"({total} bytes in {count} files)"
    )


AUXILIARY_SUFFIXES = (".jwks.json", ".md", ".txt")
AUXILIARY_DIRS = ("keys/", "tests/")


def _is_auxiliary(rel: str) -> bool:
    """Files that are bundle content without being Cedar: key sets, docs, test fixtures."""
    return rel.endswith(AUXILIARY_SUFFIXES) or rel.startswith(AUXILIARY_DIRS)


def _unknown_file_message(rel: str) -> str:
    name = PurePosixPath(rel).name
    hints = {
        "entity.json": ENTITIES,
        "entities.yaml": ENTITIES,
        "link.json": LINKS,
        "manifest.yml": MANIFEST,
        "routes.yml": ROUTES,
        "route.yaml": ROUTES,
    }
    if name in hints:
        return f"unknown file, ignored (did you mean {hints[name]}?)"
    if rel.endswith(".cedarschema.yaml") or rel.endswith(".schema.json"):
        return "unknown file, ignored (a schema is *.cedarschema or *.cedarschema.json)"
    if "/" in rel and PurePosixPath(rel).name in (ENTITIES, LINKS, MANIFEST, ROUTES):
        return f"unknown file, ignored ({name} is only read at the bundle root)"
    return "unknown file, ignored"


def _parse_manifest(source: SourceFile) -> tuple[Manifest, list[Problem]]:
    problems: list[Problem] = []
    try:
        loader = yaml.SafeLoader(source.text)  # refuses control characters right away
        try:
            node = loader.get_single_node()
            raw = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        return Manifest(), [_yaml_problem(source, exc)]
    except RecursionError:
        return Manifest(), [Problem(source.path, "invalid YAML: nested too deeply", 1)]
    if node is None:  # empty, or only comments
        node, raw = yaml.MappingNode("tag:yaml.org,2002:map", []), {}
    if not isinstance(raw, dict) or not isinstance(node, yaml.MappingNode):
        return Manifest(), [Problem(source.path, "must be a YAML mapping", line=1)]
    # Values are read as written: YAML would turn `revision: 1.10` into 1.1, `0123` into 83
    # and `2026-11-30` into a date, and a bare `validation: off` into false.
    nodes: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key, value in node.value:
        if not key.tag.endswith(":str"):
            continue
        if key.value in nodes:
            first = nodes[key.value][0].start_mark.line + 1
            where = f"duplicate key {key.value!r} (first at line {first})"
            problems.append(Problem(source.path, where, key.start_mark.line + 1))
        nodes[key.value] = (key, value)
    for key in sorted(set(raw) - MANIFEST_KEYS, key=str):
        line = nodes[key][0].start_mark.line + 1 if key in nodes else None
        problems.append(Problem(source.path, f"unknown key {key!r}", line, severity="warning"))
    values: dict[str, str] = {}
    for key in ("name", "revision", "validation"):
        if key not in nodes:
            continue
        key_node, value_node = nodes[key]
        line = key_node.start_mark.line + 1
        if value_node.tag.endswith(":null"):
            continue
        if not isinstance(value_node, yaml.ScalarNode):
            problems.append(Problem(source.path, f"{key} must be a string", line))
        else:
            values[key] = value_node.value
    validation = values.get("validation", "strict")
    if validation not in VALIDATION_MODES:
        line = nodes["validation"][0].start_mark.line + 1
        problems.append(
            Problem(source.path, f"validation must be 'strict' or 'off', not {validation!r}", line)
        )
    try:
        LogRules.parse(raw.get("decision_log"))
    except ValueError as exc:
        line = nodes["decision_log"][0].start_mark.line + 1 if "decision_log" in nodes else None
        problems.append(Problem(source.path, str(exc), line))
    manifest = Manifest(
        name=values.get("name", ""),
        revision=values.get("revision", ""),
        validation=validation,
        raw=raw,
    )
    return manifest, problems


def _yaml_problem(source: SourceFile, exc: yaml.YAMLError) -> Problem:
    """`invalid YAML: <what>` at the line and column YAML reports, without its quoted excerpt."""
    path = source.path
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
        line, column = position(source.text, exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return Problem(path, f"invalid YAML: {exc.reason} (#x{code:04x})", line, column)
    mark = getattr(exc, "problem_mark", None)
    what = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"invalid YAML: {what}" + (f" ({context})" if context else "")
    if mark is None:
        return Problem(path, message)
    return Problem(path, message, mark.line + 1, mark.column + 1)


def content_digest(files: dict[str, str]) -> str:
    """`sha256:` + 16 hex digits over the sorted relative paths and contents."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        data = files[rel].encode("utf-8")
        digest.update(rel.encode("utf-8") + b"\0")
        digest.update(str(len(data)).encode("ascii") + b"\0")
        digest.update(data)
    return "sha256:" + digest.hexdigest()[:16]
