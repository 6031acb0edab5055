"""The security settings of every pod in deploy/kubernetes, and a check of the check itself."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.deploy import Document, all_containers, find, pod_template, workloads


def _effective(container: dict[str, Any], pod: dict[str, Any], key: str) -> Any:
    own = container.get("securityContext", {})
    return own[key] if key in own else pod.get("securityContext", {}).get(key)


def pod_security_problems(pod_spec: dict[str, Any]) -> list[str]:
    """Every departure from the hardening the deploy kit promises, for one pod spec."""
    problems = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(key):
            problems.append(f"pod: {key}")
    if pod_spec.get("automountServiceAccountToken") is not False:
        problems.append("pod: automountServiceAccountToken must be false")
    for volume in pod_spec.get("volumes", []):
        if "hostPath" in volume:
            problems.append(f"volume {volume['name']}: hostPath")
    for c in all_containers(pod_spec):
        name = c["name"]
        own = c.get("securityContext", {})
        if _effective(c, pod_spec, "runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot")
        user = _effective(c, pod_spec, "runAsUser")
        if not isinstance(user, int) or user <= 0:
            problems.append(f"{name}: runAsUser must be a fixed non-zero uid")
        group = _effective(c, pod_spec, "runAsGroup")
        if not isinstance(group, int) or group <= 0:
            problems.append(f"{name}: runAsGroup must be a fixed non-zero gid")
        if own.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        if own.get("privileged"):
            problems.append(f"{name}: privileged")
        capabilities = own.get("capabilities", {})
        if capabilities.get("drop") != ["ALL"] or capabilities.get("add"):
            problems.append(f"{name}: capabilities must drop ALL and add none")
        if own.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem must be true")
        seccomp = _effective(c, pod_spec, "seccompProfile") or {}
        if seccomp.get("type") != "RuntimeDefault":
            problems.append(f"{name}: seccompProfile must be RuntimeDefault")
        runs_to_completion = c in pod_spec.get("initContainers", []) and (
            c.get("restartPolicy") != "Always"
        )  # a plain init container cannot have probes; a native sidecar must
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in c and not runs_to_completion:
                problems.append(f"{name}: {probe} missing")
        resources = c.get("resources", {})
        for part, key in [("requests", "cpu"), ("requests", "memory"), ("limits", "memory")]:
            if key not in resources.get(part, {}):
                problems.append(f"{name}: resources.{part}.{key} missing")
        image = c.get("image", "")
        tag = image.rsplit("/", 1)[-1]
        if ":" not in tag or tag.endswith(":latest"):
            problems.append(f"{name}: image must be pinned to a version, not {image!r}")
    return problems


@pytest.mark.parametrize("document", workloads(), ids=lambda d: d.label)
def test_every_pod_template_is_hardened(document: Document) -> None:
    spec = pod_template(document)["spec"]
    assert pod_security_problems(spec) == []


def test_the_hardening_check_catches_each_regression() -> None:
    spec = pod_template(find("Deployment", "orders"))["spec"]
    assert pod_security_problems(spec) == []
    breakages = {
        "pdp: runAsNonRoot": lambda s, c: c["securityContext"].update(runAsNonRoot=False),
        "pdp: runAsUser must be a fixed non-zero uid": lambda s, c: (
            c["securityContext"].pop("runAsUser"),
            s["securityContext"].pop("runAsUser"),
        ),
        "pdp: allowPrivilegeEscalation must be false": lambda s, c: c["securityContext"].pop(
            "allowPrivilegeEscalation"
        ),
        "pdp: capabilities must drop ALL and add none": lambda s, c: c["securityContext"][
            "capabilities"
        ].update(add=["NET_BIND_SERVICE"]),
        "pdp: readOnlyRootFilesystem must be true": lambda s, c: c["securityContext"].update(
            readOnlyRootFilesystem=False
        ),
        "pdp: seccompProfile must be RuntimeDefault": lambda s, c: c["securityContext"].update(
            seccompProfile={"type": "Unconfined"}
        ),
        "pdp: livenessProbe missing": lambda s, c: c.pop("livenessProbe"),
        "pdp: resources.limits.memory missing": lambda s, c: c["resources"]["limits"].pop("memory"),
        "pdp: image must be pinned to a version, not 'pdp:latest'": lambda s, c: c.update(
            image="pdp:latest"
        ),
        "pod: automountServiceAccountToken must be false": lambda s, c: s.pop(
            "automountServiceAccountToken"
        ),
    }
    breakages["pdp: readinessProbe missing"] = lambda s, c: c.pop("readinessProbe")
    for expected, breaks in breakages.items():
        broken = copy.deepcopy(spec)
        breaks(broken, broken["initContainers"][0])
        assert expected in pod_security_problems(broken), expected


def test_namespaces_enforce_the_restricted_pod_security_standard() -> None:
    for name in ("pdp", "gateway"):
        labels = find("Namespace", name).body["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
