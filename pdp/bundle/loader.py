"""Reads a bundle directory into plain text files, classified, with warnings for strays."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pdp.bundle.files import (
    MAX_BUNDLE_BYTES,
    MAX_FILE_BYTES,
    Listing,
    read_content,
    scan_bundle,
    too_large,
)
from pdp.bundle.manifest import MANIFEST, Manifest, parse_manifest
from pdp.errors import BundleError, FileReadError, Problem

ENTITIES = "entities.json"
LINKS = "links.json"
ROUTES = "routes.yaml"
PROTECTION = "protection.yaml"
SCHEMA_SUFFIXES = (".cedarschema", ".cedarschema.json")


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One bundle file: its POSIX path relative to the bundle root, and its text."""

    path: str
    text: str


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
    protection: SourceFile | None = None

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
        elif rel in (MANIFEST, ENTITIES, LINKS, ROUTES, PROTECTION):
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
        manifest, manifest_problems = parse_manifest(MANIFEST, special[MANIFEST].text)
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
        protection=special.get(PROTECTION),
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
        "protection.yml": PROTECTION,
    }
    if name in hints:
        return f"unknown file, ignored (did you mean {hints[name]}?)"
    if rel.endswith(".cedarschema.yaml") or rel.endswith(".schema.json"):
        return "unknown file, ignored (a schema is *.cedarschema or *.cedarschema.json)"
    if "/" in rel and PurePosixPath(rel).name in (ENTITIES, LINKS, MANIFEST, ROUTES, PROTECTION):
        return f"unknown file, ignored ({name} is only read at the bundle root)"
    return "unknown file, ignored"


def content_digest(files: dict[str, str]) -> str:
    """`sha256:` + 16 hex digits over the sorted relative paths and contents."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        data = files[rel].encode("utf-8")
        digest.update(rel.encode("utf-8") + b"\0")
        digest.update(str(len(data)).encode("ascii") + b"\0")
        digest.update(data)
    return "sha256:" + digest.hexdigest()[:16]
