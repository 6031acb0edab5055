"""The Kubernetes manifests of deploy/kubernetes: schema-valid and wired as pdp needs (their
pods' hardening: test_pod_security.py)."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from pdp.cli.main import build_parser
from pdp.server.app import HEALTH_SERVICES
from tests.support.deploy import (
    KUBERNETES,
    Document,
    PdpContainer,
    cpu_cores,
    documents,
    env_values,
    find,
    pdp_containers,
    pod_template,
)

# The oldest Kubernetes these manifests target (native sidecars and the preStop `sleep`
# action are on by default from 1.30), validated with that version's schemas, strictly:
# an unknown or misspelt field is an error.
KUBERNETES_VERSION = "1.30.0"

DOCUMENTS = documents()
BUILTIN = [d for d in DOCUMENTS if not d.is_custom]
CUSTOM = [d for d in DOCUMENTS if d.is_custom]
PDP = pdp_containers()


def test_the_kit_has_the_expected_pieces() -> None:
    kinds = {(d.path.parent.name, d.kind) for d in DOCUMENTS}
    for piece in [
        ("sidecar", "Deployment"),
        ("sidecar", "ConfigMap"),
        ("gateway", "Deployment"),
        ("gateway", "Service"),
        ("gateway", "PodDisruptionBudget"),
        ("gateway", "NetworkPolicy"),
        ("gateway", "ConfigMap"),
        ("istio", "AuthorizationPolicy"),
        ("istio", "IstioOperator"),
        ("monitoring", "ServiceMonitor"),
    ]:
        assert piece in kinds, piece
    assert len(PDP) == 2


@pytest.mark.parametrize("document", BUILTIN, ids=lambda d: d.label)
def test_manifest_is_valid_against_the_kubernetes_schema(document: Document) -> None:
    kubernetes_validate.validate(document.body, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_catches_a_misspelt_field() -> None:
    """The validation above can fail: a typo in a security field is refused."""
    deployment = copy.deepcopy(find("Deployment", "pdp").body)
    context = deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    context["readOnlyRootFilesytem"] = context.pop("readOnlyRootFilesystem")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    deployment = copy.deepcopy(find("Deployment", "pdp").body)
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = (
        "grpc"  # a grpc probe takes a number, not a port name
    )
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


# --- custom resources: not in the schemas, so their structure is checked here ---------------


def custom_resource_problems(body: dict[str, Any]) -> list[str]:
    """What the CRD (Istio's, the Prometheus Operator's) would refuse or pdp would not expect."""
    problems = []
    kind = body.get("kind")
    spec = body.get("spec")
    if not isinstance(spec, dict):
        return ["spec: missing"]
    if kind != "IstioOperator" and not body.get("metadata", {}).get("name"):
        problems.append("metadata.name: missing")
    if kind == "AuthorizationPolicy":
        action = spec.get("action", "ALLOW")
        if action not in {"ALLOW", "DENY", "AUDIT", "CUSTOM"}:
            problems.append(f"spec.action: {action!r} is not an action")
        if action == "CUSTOM" and not (spec.get("provider") or {}).get("name"):
            problems.append("spec.provider.name: CUSTOM needs a provider")
        unknown = set(spec) - {"selector", "targetRef", "targetRefs", "action", "provider", "rules"}
        if unknown:
            problems.append(f"spec: unknown fields {sorted(unknown)}")
        for i, rule in enumerate(spec.get("rules", [])):
            if not set(rule) <= {"from", "to", "when"}:
                problems.append(f"spec.rules[{i}]: unknown fields {sorted(rule)}")
            for j, to in enumerate(rule.get("to", [])):
                known = {"hosts", "notHosts", "ports", "notPorts", "methods", "notMethods"}
                known |= {"paths", "notPaths"}
                if not set(to.get("operation", {})) <= known:
                    problems.append(f"spec.rules[{i}].to[{j}].operation: unknown fields")
    elif kind == "IstioOperator":
        providers = spec.get("meshConfig", {}).get("extensionProviders")
        if not isinstance(providers, list) or not providers:
            problems.append("spec.meshConfig.extensionProviders: missing")
        for i, provider in enumerate(providers or []):
            kinds = set(provider) - {"name"}
            if not provider.get("name") or len(kinds) != 1:
                problems.append(f"extensionProviders[{i}]: needs a name and exactly one type")
            grpc = provider.get("envoyExtAuthzGrpc")
            if grpc is not None:
                if not isinstance(grpc.get("service"), str) or not isinstance(
                    grpc.get("port"), int
                ):
                    problems.append(f"extensionProviders[{i}]: service and port required")
                known = {"service", "port", "timeout", "failOpen", "statusOnError"}
                known |= {"includeRequestBodyInCheck", "clearRouteCache"}
                if not set(grpc) <= known:
                    problems.append(f"extensionProviders[{i}]: unknown {sorted(set(grpc) - known)}")
    elif kind == "ServiceMonitor":
        if not isinstance(spec.get("selector"), dict):
            problems.append("spec.selector: required")
        endpoints = spec.get("endpoints")
        if not isinstance(endpoints, list) or not endpoints:
            problems.append("spec.endpoints: required")
        for i, endpoint in enumerate(endpoints or []):
            if not endpoint.get("port") and not endpoint.get("targetPort"):
                problems.append(f"spec.endpoints[{i}]: port or targetPort required")
    else:
        problems.append(f"{kind}: no structural check for this kind")
    return problems


@pytest.mark.parametrize("document", CUSTOM, ids=lambda d: d.label)
def test_custom_resource_has_the_structure_its_crd_requires(document: Document) -> None:
    assert custom_resource_problems(document.body) == []


def test_the_custom_resource_check_catches_mistakes() -> None:
    policy = copy.deepcopy(find("AuthorizationPolicy", "pdp-ext-authz").body)
    del policy["spec"]["provider"]
    policy["spec"]["rules"][0]["to"][0]["operation"]["notPath"] = ["/x"]
    problems = custom_resource_problems(policy)
    assert "spec.provider.name: CUSTOM needs a provider" in problems
    assert "spec.rules[0].to[0].operation: unknown fields" in problems
    mesh = copy.deepcopy(next(d.body for d in CUSTOM if d.kind == "IstioOperator"))
    mesh["spec"]["meshConfig"]["extensionProviders"][0]["envoyExtAuthzGrpc"]["port"] = "9191"
    assert custom_resource_problems(mesh) == ["extensionProviders[0]: service and port required"]


# --- pdp's own wiring ----------------------------------------------------------------------


@pytest.mark.parametrize("pdp", PDP, ids=lambda p: p.label)
def test_pdp_args_are_accepted_by_pdp_serve(pdp: PdpContainer) -> None:
    """The real `pdp serve` parser takes the manifest's args (after `$(VAR)` expansion)."""
    args = build_parser().parse_args(["serve", *pdp.expanded_args(env_values(pdp))])
    mounts = pdp.mounts()
    assert args.bundle in mounts and mounts[args.bundle]["mount"].get("readOnly") is True
    assert "configMap" in mounts[args.bundle]["volume"]
    assert args.decision_log == "-"  # stdout, for the cluster's log collector
    assert args.wait_for_bundle  # a pod without a bundle is not ready, not crash-looping
    assert args.watch in ("auto", "poll")  # the ConfigMap's `..data` swap is seen
    assert args.metrics is not None
    annotations = pdp.pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == args.metrics.rsplit(":", 1)[1]
    ports = {p["name"]: p["containerPort"] for p in pdp.container["ports"]}
    assert ports["metrics"] == int(args.metrics.rsplit(":", 1)[1])


@pytest.mark.parametrize("pdp", PDP, ids=lambda p: p.label)
def test_pdp_writes_only_to_declared_writable_volumes(pdp: PdpContainer) -> None:
    """Each path pdp writes is a writable emptyDir; everything else it sees is read-only."""
    args = build_parser().parse_args(["serve", *pdp.expanded_args(env_values(pdp))])
    writable = pdp.writable_paths()
    needed = ["/tmp"]  # the image's TMPDIR (tests/deploy/test_dockerfile.py checks it)
    if args.listen.startswith("unix:"):
        needed.append(args.listen[len("unix:") :].rsplit("/", 1)[0])
    if args.workers > 1:
        multiproc = pdp.env.get("PROMETHEUS_MULTIPROC_DIR", {}).get("value")
        assert multiproc, "--workers needs PROMETHEUS_MULTIPROC_DIR (else a dir under /tmp)"
        needed.append(multiproc)
    assert sorted(writable) == sorted(needed)
    for path in writable:
        volume = pdp.mounts()[path]["volume"]
        assert "emptyDir" in volume and volume["emptyDir"].get("sizeLimit"), path


@pytest.mark.parametrize("pdp", PDP, ids=lambda p: p.label)
def test_pdp_probes_keep_a_bad_bundle_alive_and_unready(pdp: PdpContainer) -> None:
    args = build_parser().parse_args(["serve", *pdp.expanded_args(env_values(pdp))])
    container = pdp.container
    tcp = not args.listen.startswith("unix:")
    port = int(args.listen.rsplit(":", 1)[1]) if tcp else None
    address = f"127.0.0.1:{port}" if tcp else args.listen
    readiness = container["readinessProbe"]
    if "grpc" in readiness:  # the kubelet's own gRPC health probe: SERVING or not ready
        assert tcp and readiness["grpc"]["port"] == port
        assert readiness["grpc"]["service"] in HEALTH_SERVICES
    else:
        command = readiness["exec"]["command"]
        assert command[:3] == ["pdp-probe", "ready", address]
    for name in ("livenessProbe", "startupProbe"):
        probe = container[name]
        # Never the readiness semantics: a NOT_SERVING pdp (bad or missing bundle) must live.
        assert "grpc" not in probe and "exec" in probe, name
        assert probe["exec"]["command"] == ["pdp-probe", "live", address], name
        assert probe["timeoutSeconds"] >= 3  # pdp-probe's own timeout is 2 s
    assert (
        container["startupProbe"]["periodSeconds"] * container["startupProbe"]["failureThreshold"]
        >= 60
    )


@pytest.mark.parametrize("pdp", PDP, ids=lambda p: p.label)
def test_termination_grace_covers_the_drain(pdp: PdpContainer) -> None:
    args = build_parser().parse_args(["serve", *pdp.expanded_args(env_values(pdp))])
    pause = pdp.container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = pdp.pod["spec"]["terminationGracePeriodSeconds"]
    assert grace >= pause + args.grace + 5


def test_gateway_workers_follow_the_cpu_limit() -> None:
    (pdp,) = [p for p in PDP if p.document.name == "pdp"]
    assert pdp.flag("--workers") == "$(PDP_WORKERS)"
    source = pdp.env["PDP_WORKERS"]["valueFrom"]["resourceFieldRef"]
    assert source == {"containerName": "pdp", "resource": "limits.cpu", "divisor": "1"}
    resources = pdp.container["resources"]
    cores = cpu_cores(resources["limits"]["cpu"])
    assert cores == int(cores) >= 2  # whole cores: N workers use exactly the limit
    assert resources["requests"] == resources["limits"]  # Guaranteed QoS, no throttling surprise
    args = build_parser().parse_args(["serve", *pdp.expanded_args(env_values(pdp))])
    assert args.workers == int(cores)


def test_sidecar_pdp_is_reachable_only_through_the_pods_socket() -> None:
    document = find("Deployment", "orders", "shop")
    spec = pod_template(document)["spec"]
    (pdp,) = [p for p in PDP if p.document.name == "orders"]
    assert pdp.container in spec["initContainers"]
    assert pdp.container["restartPolicy"] == "Always"  # a native sidecar: up first, down last
    args = build_parser().parse_args(["serve", *pdp.expanded_args(env_values(pdp))])
    assert args.listen.startswith("unix:") and args.unix_socket_mode == 0o660
    assert args.workers == 1
    socket_dir = args.listen[len("unix:") :].rsplit("/", 1)[0]
    socket_volume = pdp.mounts()[socket_dir]["volume"]
    assert socket_volume["emptyDir"].get("medium") == "Memory"
    (app,) = spec["containers"]
    (app_mount,) = [m for m in app["volumeMounts"] if m["name"] == socket_volume["name"]]
    assert app_mount["mountPath"] == socket_dir and app_mount["readOnly"] is True
    app_env = {e["name"]: e.get("value") for e in app["env"]}
    assert app_env["PDP_ADDRESS"] == "unix://" + args.listen[len("unix:") :]
    # The socket is 0660, owned by pdp's user and the pod's fsGroup: the service is another
    # user of that group.
    pod_context = spec["securityContext"]
    app_context = app["securityContext"]
    assert pod_context["fsGroup"] == pdp.container["securityContext"]["runAsGroup"]
    assert app_context["runAsGroup"] == pod_context["fsGroup"]
    assert app_context["runAsUser"] != pdp.container["securityContext"]["runAsUser"]
    assert spec["terminationGracePeriodSeconds"] >= args.grace + 10


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_gateway_services_budget_and_policy_select_the_pdp_pods() -> None:
    deployment = find("Deployment", "pdp", "pdp")
    labels = pod_template(deployment)["metadata"]["labels"]
    ports = {
        p["name"]: p["containerPort"]
        for p in pod_template(deployment)["spec"]["containers"][0]["ports"]
    }
    for name in ("pdp", "pdp-headless"):
        service = find("Service", name, "pdp").body["spec"]
        assert all(labels.get(k) == v for k, v in service["selector"].items()), name
        (grpc,) = [p for p in service["ports"] if p["name"] == "grpc"]
        assert grpc["targetPort"] == "grpc" and grpc["port"] == ports["grpc"]
    assert find("Service", "pdp-headless", "pdp").body["spec"]["clusterIP"] == "None"
    budget = find("PodDisruptionBudget", "pdp", "pdp").body["spec"]
    assert _selects(budget["selector"], labels)
    assert budget["maxUnavailable"] == 1 < deployment.body["spec"]["replicas"]
    policy = find("NetworkPolicy", "pdp-ingress", "pdp").body["spec"]
    assert _selects(policy["podSelector"], labels) and policy["policyTypes"] == ["Ingress"]
    monitor = next(d for d in CUSTOM if d.kind == "ServiceMonitor").body["spec"]
    monitored = [
        n
        for n in ("pdp", "pdp-headless")
        if _selects(monitor["selector"], find("Service", n, "pdp").body["metadata"]["labels"])
    ]
    assert monitored == ["pdp"]  # scraped once, through the Service with the metrics port


def test_network_policy_admits_only_the_gateways_to_the_grpc_port() -> None:
    policy = find("NetworkPolicy", "pdp-ingress", "pdp").body["spec"]
    envoy = find("Deployment", "envoy-gateway", "gateway")
    envoy_labels = pod_template(envoy)["metadata"]["labels"]
    istio = next(d for d in CUSTOM if d.kind == "AuthorizationPolicy")
    grpc_rules = [r for r in policy["ingress"] if {"port": "grpc", "protocol": "TCP"} in r["ports"]]
    (rule,) = grpc_rules
    assert all("namespaceSelector" in p and "podSelector" in p for p in rule["from"])
    admitted = [
        (p["namespaceSelector"]["matchLabels"], p["podSelector"]["matchLabels"])
        for p in rule["from"]
    ]
    assert admitted == [
        (
            {"kubernetes.io/metadata.name": envoy.namespace},
            {"app.kubernetes.io/name": "envoy-gateway"},
        ),
        (
            {"kubernetes.io/metadata.name": istio.namespace},
            istio.body["spec"]["selector"]["matchLabels"],
        ),
    ]
    assert _selects({"matchLabels": admitted[0][1]}, envoy_labels)
    # No rule admits everyone, and the metrics rule opens the metrics port only.
    for r in policy["ingress"]:
        assert r.get("from"), "a rule without `from` admits every source"
        if r is not rule:
            assert r["ports"] == [{"port": "metrics", "protocol": "TCP"}]


def test_pdp_image_tag_is_the_project_version() -> None:
    import tomllib

    version = tomllib.loads((KUBERNETES.parents[1] / "pyproject.toml").read_text())["project"][
        "version"
    ]
    for pdp in PDP:
        assert pdp.container["image"].endswith(f"/pdp:{version}"), pdp.label
