"""The Dockerfile and .dockerignore follow the image rules of docs/deploy.md."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from pdp.cli.main import build_parser
from tests.support.deploy import (
    DOCKERFILE,
    DOCKERIGNORE,
    REPO,
    Stage,
    dockerfile_stages,
    key_values,
    pdp_containers,
)

TEXT = DOCKERFILE.read_text()
PREAMBLE, STAGES = dockerfile_stages(TEXT)
FINAL = STAGES[-1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PINNED_BASE = re.compile(
    r"docker\.io/library/python:(?P<version>\d+\.\d+\.\d+)-slim-(?P<distro>[a-z]+)@sha256:[0-9a-f]{64}"
)


def _base_default() -> str:
    args = [key_values(i.value) for i in PREAMBLE if i.keyword == "ARG"]
    (base,) = [a["PYTHON_IMAGE"] for a in args if "PYTHON_IMAGE" in a]
    return base


def _env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        env.update(key_values(instruction.value))
    return env


def test_base_is_pinned_by_exact_version_and_digest() -> None:
    base = _base_default()
    match = PINNED_BASE.fullmatch(base)
    assert match, base
    major, minor, _ = (int(n) for n in match["version"].split("."))
    required = PYPROJECT["project"]["requires-python"]
    assert required.startswith(">=")
    need = tuple(int(n) for n in required[2:].split("."))
    assert (major, minor) >= need
    # Every stage starts from that one base or an earlier stage; nothing unpinned sneaks in.
    names = set()
    for stage in STAGES:
        assert stage.base == "${PYTHON_IMAGE}" or stage.base in names, stage.base
        if stage.name:
            names.add(stage.name)
    assert len(STAGES) >= 2  # multi-stage: build tools stay in the build stage
    labels = key_values(FINAL.all("LABEL")[0].value)
    assert labels["org.opencontainers.image.base.name"] == base.split("@")[0]


def test_runtime_runs_as_a_fixed_non_root_user_matching_the_manifests() -> None:
    (user,) = FINAL.all("USER")
    uid, _, gid = user.value.partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) > 0 and int(gid) > 0
    assert FINAL.instructions.index(user) > max(
        FINAL.instructions.index(i) for i in FINAL.all("RUN")
    ), "USER comes after the last RUN"
    for pdp in pdp_containers():
        context = pdp.container["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (int(uid), int(gid)), pdp.label


def test_entrypoint_is_pdp_serve_with_the_documented_bundle_path() -> None:
    (entrypoint,) = FINAL.all("ENTRYPOINT")
    assert json.loads(entrypoint.value) == ["pdp", "serve"]  # exec form: pdp gets the signals
    (cmd,) = FINAL.all("CMD")
    bundle, *rest = json.loads(cmd.value)
    assert bundle == "/etc/pdp/bundle"
    assert f"bundle:   mount it at {bundle}" in TEXT
    build_parser().parse_args(["serve", bundle, *rest])
    for pdp in pdp_containers():
        assert pdp.args[0] == bundle, pdp.label


def test_stopsignal_and_documented_grace_match_pdp_and_the_manifests() -> None:
    (stop,) = FINAL.all("STOPSIGNAL")
    assert stop.value == "SIGTERM"
    default_grace = build_parser().parse_args(["serve", "b"]).grace
    assert f"--grace seconds (default {default_grace:g})" in TEXT
    # The sum the comment gives is the gateway's terminationGracePeriodSeconds.
    match = re.search(r"\(deploy/kubernetes:\s*#?\s*(\d+) \+ (\d+) \+ (\d+) = (\d+)\)", TEXT)
    assert match, "the grace arithmetic is documented"
    pause, grace, margin, total = (int(g) for g in match.groups())
    assert pause + grace + margin == total
    (gateway,) = [p for p in pdp_containers() if p.document.name == "pdp"]
    assert gateway.pod["spec"]["terminationGracePeriodSeconds"] == total
    assert gateway.container["lifecycle"]["preStop"]["sleep"]["seconds"] == pause
    assert gateway.flag("--grace") == str(grace)


def test_no_remote_add_and_nothing_fetched_by_hand() -> None:
    for stage in STAGES:
        for add in stage.all("ADD"):
            assert not re.search(r"(https?|ftp|git)://|git@", add.value), add
        for run in stage.all("RUN"):
            assert not re.search(r"\b(curl|wget)\b", run.value), run


def test_runtime_stage_has_no_build_tools_or_caches() -> None:
    for run in FINAL.all("RUN"):
        assert not re.search(r"\b(apt-get|apt|pip|gcc|make)\b", run.value), run
    (copy,) = [c for c in FINAL.all("COPY")]
    assert copy.value.startswith("--from=build ")
    build = STAGES[0]
    assert _env(build).get("PIP_NO_CACHE_DIR") == "1"
    installs = [r for r in build.all("RUN") if "pip install" in r.value]
    assert installs
    # pip itself is removed from the runtime virtualenv once pdp is installed.
    assert any("pip uninstall --yes pip" in r.value for r in build.all("RUN"))


def test_dependencies_come_from_the_project_metadata() -> None:
    build = STAGES[0]
    copies = [shlex.split(c.value) for c in build.all("COPY")]
    assert copies[0] == ["pyproject.toml", "./"]
    runs = " ".join(r.value for r in build.all("RUN"))
    assert '["project"]["dependencies"]' in runs and "pip install --no-deps ." in runs


def test_runtime_environment_suits_a_read_only_root() -> None:
    env = _env(FINAL)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # no __pycache__ writes at run time
    assert env["TMPDIR"] == "/tmp"  # the emptyDir every manifest mounts there
    assert env["PATH"].startswith("/opt/pdp/bin:")
    compiles = [r.value for r in STAGES[0].all("RUN") if "compileall" in r.value]
    assert compiles and "--invalidation-mode unchecked-hash" in compiles[0]  # no recompiling


def test_oci_labels_name_version_source_and_licence() -> None:
    labels: dict[str, str] = {}
    for label in FINAL.all("LABEL"):
        labels.update(key_values(label.value))
    for key in ("title", "description", "version", "revision", "source", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]
    args = {k: v for a in FINAL.all("ARG") for k, v in key_values(a.value).items()}
    assert args["VERSION"] == PYPROJECT["project"]["version"]


def test_the_probe_the_manifests_call_is_installed_in_the_image() -> None:
    copies = [shlex.split(c.value) for c in STAGES[0].all("COPY")]
    assert ["deploy/image/pdp_probe.py", "/opt/pdp/bin/pdp-probe"] in copies
    assert (REPO / "deploy/image/pdp_probe.py").read_text().startswith("#!/opt/pdp/bin/python\n")
    for pdp in pdp_containers():
        commands = [
            pdp.container[p]["exec"]["command"][0]
            for p in ("readinessProbe", "livenessProbe", "startupProbe")
            if "exec" in pdp.container[p]
        ]
        assert commands and set(commands) == {"pdp-probe"}, pdp.label


# --- .dockerignore --------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (Go's filepath.Match plus `**`) as a regex over a clean path."""
    out = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]"
            i = end
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out)


def dockerignore_excludes(path: str, lines: list[str]) -> bool:
    """Whether Docker leaves `path` out of the build context (last matching rule wins,
    and a rule matching a parent folder applies to everything under it)."""
    rules = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        rules.append((negate, _pattern_regex(pattern.strip("/"))))
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, regex in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            excluded = not negate
    return excluded


IGNORE_LINES = DOCKERIGNORE.read_text().splitlines()


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        "tests/deploy/test_dockerfile.py",
        "bench/run.py",
        "policies/baseline.cedar",
        "examples/envoy/envoy.yaml",
        "deploy/kubernetes/gateway/pdp.yaml",
        ".pytest_cache/v/cache",
        "pdp/__pycache__/engine.cpython-311.pyc",
        "pdp/bundle/__pycache__/loader.cpython-312.pyc",
        "build/lib/pdp/engine.py",
        "pdp.egg-info/PKG-INFO",
        "pdp/.secret.env",
        "Dockerfile",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert dockerignore_excludes(path, IGNORE_LINES), path


def _copy_sources() -> list[str]:
    sources = []
    for stage in STAGES:
        for copy in stage.all("COPY"):
            words = [w for w in shlex.split(copy.value) if not w.startswith("--")]
            if not copy.value.startswith("--from="):
                sources += words[:-1]
    return sources


def test_dockerignore_lets_in_everything_the_build_copies() -> None:
    sources = _copy_sources()
    assert sources
    for source in sources:
        root = REPO / source
        assert root.exists(), source
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for file in files:
            rel = file.relative_to(REPO).as_posix()
            if "__pycache__" in rel:
                continue
            assert not dockerignore_excludes(rel, IGNORE_LINES), rel
    # The package data the install needs is in the context too.
    assert not dockerignore_excludes("pdp/py.typed", IGNORE_LINES)
    assert not dockerignore_excludes("pdp/v1/authorizer_pb2.py", IGNORE_LINES)


def test_the_ignore_matcher_follows_dockers_rules() -> None:
    lines = ["*", "!keep/", "keep/**/*.tmp", "!keep/a.tmp"]
    assert dockerignore_excludes("other.txt", lines)
    assert not dockerignore_excludes("keep/x.py", lines)
    assert dockerignore_excludes("keep/deep/x.tmp", lines)
    assert not dockerignore_excludes("keep/a.tmp", lines)


def test_build_script_chooses_a_builder_and_passes_the_labels() -> None:
    script = (REPO / "deploy/image/build.sh").read_text()
    for builder in ("docker", "podman", "buildah"):
        assert f"command -v {builder}" in script
    for arg in ("VERSION", "REVISION", "SOURCE"):
        assert f"--build-arg {arg}=" in script
    makefile = (REPO / "Makefile").read_text()
    assert "image:\n\tdeploy/image/build.sh\n" in makefile


def test_dockerfile_copies_no_path_outside_the_repository() -> None:
    for source in _copy_sources():
        assert ".." not in Path(source).parts, source
