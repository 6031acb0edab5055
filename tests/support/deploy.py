"""Reading the deploy kit for tests: manifests, pod templates, pdp containers, the Dockerfile."""

from __future__ import annotations

import importlib.util
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from tests.support.paths import REPO

DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PROBE = DEPLOY / "image" / "pdp_probe.py"
BUILD_SCRIPT = DEPLOY / "image" / "build.sh"

# Kinds that carry a pod template, and where it is.
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# Custom resources (not in Kubernetes' OpenAPI schemas): checked structurally instead.
CUSTOM_KINDS = {
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("install.istio.io/v1alpha1", "IstioOperator"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}


@dataclass(frozen=True)
class Document:
    """One YAML document of a manifest file."""

    path: Path
    index: int
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind"))

    @property
    def name(self) -> str:
        return str(self.body.get("metadata", {}).get("name"))

    @property
    def namespace(self) -> str | None:
        return self.body.get("metadata", {}).get("namespace")

    @property
    def label(self) -> str:
        return f"{self.path.relative_to(REPO)}#{self.index}:{self.kind}/{self.name}"

    @property
    def is_custom(self) -> bool:
        return (self.body.get("apiVersion"), self.kind) in CUSTOM_KINDS


def manifest_files() -> list[Path]:
    return sorted(KUBERNETES.rglob("*.yaml"))


def documents() -> list[Document]:
    found = []
    for path in manifest_files():
        for index, body in enumerate(yaml.safe_load_all(path.read_text())):
            if body is not None:
                found.append(Document(path, index, body))
    return found


def find(kind: str, name: str, namespace: str | None = None) -> Document:
    matches = [
        d
        for d in documents()
        if d.kind == kind and d.name == name and (namespace is None or d.namespace == namespace)
    ]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {[m.label for m in matches]}"
    return matches[0]


def pod_template(document: Document) -> dict[str, Any]:
    """The pod template of a workload (`spec.template`, or a CronJob's job template)."""
    spec = document.body["spec"]
    if document.kind == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]
    return spec["template"]


def workloads() -> list[Document]:
    return [d for d in documents() if d.kind in WORKLOAD_KINDS | {"CronJob"}]


def all_containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod_spec.get("initContainers", [])) + list(pod_spec.get("containers", []))


def is_pdp(container: dict[str, Any]) -> bool:
    return container["image"].rsplit("/", 1)[-1].split(":")[0] == "pdp"


@dataclass
class PdpContainer:
    """A pdp container of a manifest, with its pod and its `pdp serve` arguments parsed."""

    document: Document
    pod: dict[str, Any]
    container: dict[str, Any]
    args: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.document.label}/{self.container['name']}"

    @property
    def env(self) -> dict[str, dict[str, Any]]:
        return {e["name"]: e for e in self.container.get("env", [])}

    def flag(self, name: str) -> str | None:
        """The value of `--name=value` or `--name value` in the args; None when absent."""
        for i, arg in enumerate(self.args):
            if arg == name and i + 1 < len(self.args):
                return self.args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
        return None

    def has_flag(self, name: str) -> bool:
        return any(a == name or a.startswith(name + "=") for a in self.args)

    def mounts(self) -> dict[str, dict[str, Any]]:
        """mountPath -> {mount, volume}."""
        volumes = {v["name"]: v for v in self.pod["spec"].get("volumes", [])}
        return {
            m["mountPath"]: {"mount": m, "volume": volumes[m["name"]]}
            for m in self.container.get("volumeMounts", [])
        }

    def writable_paths(self) -> list[str]:
        return [p for p, m in self.mounts().items() if not m["mount"].get("readOnly", False)]

    def expanded_args(self, values: dict[str, str]) -> list[str]:
        """The args with Kubernetes' `$(VAR)` references replaced from `values`."""
        return [
            re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: values[m.group(1)], a)
            for a in self.args
        ]


def pdp_containers() -> list[PdpContainer]:
    found = []
    for document in workloads():
        pod = pod_template(document)
        for container in all_containers(pod["spec"]):
            if is_pdp(container):
                args = list(container.get("command", [])) + list(container.get("args", []))
                found.append(PdpContainer(document, pod, container, args))
    return found


def cpu_cores(quantity: str) -> float:
    """A Kubernetes CPU quantity ("2", "1500m") in cores."""
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def load_script(path: Path, name: str) -> ModuleType:
    """Import a script of deploy/ (not a package) as a module."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the Dockerfile -------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments and blank lines dropped."""
    found: list[Instruction] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, value = pending.partition(" ")
        found.append(Instruction(keyword.upper(), value.strip(), start))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return found


def dockerfile_stages(text: str) -> tuple[list[Instruction], list[Stage]]:
    """The instructions before the first FROM (global ARGs), and the stages."""
    preamble: list[Instruction] = []
    stages: list[Stage] = []
    for instruction in dockerfile_instructions(text):
        if instruction.keyword == "FROM":
            words = shlex.split(instruction.value)
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].instructions.append(instruction)
        else:
            preamble.append(instruction)
    return preamble, stages


def key_values(value: str) -> dict[str, str]:
    """`A=1 B="two words"` (ENV, LABEL, ARG) as a dict."""
    pairs = {}
    for word in shlex.split(value):
        key, _, val = word.partition("=")
        pairs[key] = val
    return pairs


def env_values(pdp: PdpContainer) -> dict[str, str]:
    values = {}
    for name, entry in pdp.env.items():
        if "value" in entry:
            values[name] = entry["value"]
        elif entry.get("valueFrom", {}).get("resourceFieldRef", {}).get("resource") == (
            "limits.cpu"
        ):
            values[name] = _worker_count(pdp)
    return values


def _worker_count(pdp: PdpContainer) -> str:
    cpu = pdp.container["resources"]["limits"]["cpu"]
    return str(max(1, int(-(-cpu_cores(cpu) // 1))))  # the downward API rounds up
