"""The gateway example's Envoy and Istio configuration point at the pdp the manifests define."""

from __future__ import annotations

import yaml
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as protocol_pb2
from google.protobuf import json_format

from pdp.server.app import HEALTH_SERVICES
from tests.support.deploy import documents, find, pod_template
from tests.support.examples import EXAMPLES
from tests.support.examples import envoy_bootstrap as example_bootstrap


def gateway_bootstrap() -> bootstrap_pb2.Bootstrap:
    config_map = find("ConfigMap", "envoy-gateway", "gateway").body
    document = yaml.safe_load(config_map["data"]["envoy.yaml"])
    return json_format.ParseDict(document, bootstrap_pb2.Bootstrap())


def _service_address(name: str, namespace: str) -> tuple[str, int]:
    service = find("Service", name, namespace).body
    (grpc,) = [p for p in service["spec"]["ports"] if p["name"] == "grpc"]
    return f"{name}.{namespace}.svc.cluster.local", grpc["port"]


def _pdp_listen_port() -> int:
    container = pod_template(find("Deployment", "pdp", "pdp"))["spec"]["containers"][0]
    (listen,) = [a for a in container["args"] if a.startswith("--listen=")]
    return int(listen.rsplit(":", 1)[1])


def test_envoy_gateway_config_is_a_bootstrap_whose_pdp_cluster_is_the_headless_service() -> None:
    bootstrap = gateway_bootstrap()
    clusters = {c.name: c for c in bootstrap.static_resources.clusters}
    pdp = clusters["pdp"]
    (endpoint,) = pdp.load_assignment.endpoints[0].lb_endpoints
    socket_address = endpoint.endpoint.address.socket_address
    host, port = _service_address("pdp-headless", "pdp")
    assert (socket_address.address, socket_address.port_value) == (host, port)
    assert port == _pdp_listen_port()
    # Every pod is a host (headless + STRICT_DNS), checked over gRPC health.
    assert pdp.type == pdp.STRICT_DNS and pdp.lb_policy == pdp.ROUND_ROBIN
    (check,) = pdp.health_checks
    assert check.grpc_health_check.service_name in HEALTH_SERVICES
    options = protocol_pb2.HttpProtocolOptions()
    pdp.typed_extension_protocol_options[
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ].Unpack(options)
    assert options.explicit_http_config.HasField("http2_protocol_options")  # gRPC needs h2


def test_envoy_gateway_listener_is_the_examples_fail_closed_listener() -> None:
    """Only the clusters differ from examples/envoy: the ext_authz settings cannot drift."""
    gateway, example = gateway_bootstrap(), example_bootstrap()
    assert list(gateway.static_resources.listeners) == list(example.static_resources.listeners)
    hcm = hcm_pb2.HttpConnectionManager()
    gateway.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.Unpack(hcm)
    ext_authz = ext_authz_pb2.ExtAuthz()
    hcm.http_filters[0].typed_config.Unpack(ext_authz)
    assert ext_authz.failure_mode_allow is False
    assert ext_authz.grpc_service.envoy_grpc.cluster_name == "pdp"
    assert {c.name for c in gateway.static_resources.clusters} == {
        c.name for c in example.static_resources.clusters
    }
    orders = next(c for c in gateway.static_resources.clusters if c.name == "orders")
    address = orders.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address
    assert address.socket_address.address == "orders.shop.svc.cluster.local"


def test_envoy_deployment_mounts_what_its_config_names() -> None:
    deployment = find("Deployment", "envoy-gateway", "gateway")
    (container,) = pod_template(deployment)["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (config_arg,) = [a for a in container["args"] if a.startswith("--config-path=")]
    assert config_arg.split("=", 1)[1] == mounts["config"] + "/envoy.yaml"
    bootstrap = gateway_bootstrap()
    tls = tls_pb2.DownstreamTlsContext()
    bootstrap.static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.Unpack(
        tls
    )
    files = [
        tls.common_tls_context.tls_certificates[0].certificate_chain.filename,
        tls.common_tls_context.tls_certificates[0].private_key.filename,
        tls.common_tls_context.validation_context.trusted_ca.filename,
    ]
    assert all(f.startswith(mounts["tls"] + "/") for f in files), files
    (listener_port,) = [p["containerPort"] for p in container["ports"]]
    assert bootstrap.static_resources.listeners[0].address.socket_address.port_value == (
        listener_port
    )


def test_istio_provider_points_at_the_pdp_service_and_the_policy_uses_it() -> None:
    (policy,) = [d for d in documents() if d.kind == "AuthorizationPolicy"]
    (mesh,) = [d for d in documents() if d.kind == "IstioOperator"]
    (provider,) = mesh.body["spec"]["meshConfig"]["extensionProviders"]
    assert policy.body["spec"]["action"] == "CUSTOM"
    assert policy.body["spec"]["provider"]["name"] == provider["name"]
    grpc = provider["envoyExtAuthzGrpc"]
    assert (grpc["service"], grpc["port"]) == _service_address("pdp", "pdp")
    assert grpc["failOpen"] is False and "includeRequestBodyInCheck" not in grpc
    # The same fail-closed settings as the per-pod variant in examples/istio.
    example = yaml.safe_load((EXAMPLES / "istio" / "meshconfig.yaml").read_text())
    (example_provider,) = example["spec"]["meshConfig"]["extensionProviders"]
    example_grpc = example_provider["envoyExtAuthzGrpc"]
    for key in ("timeout", "failOpen", "statusOnError"):
        assert grpc[key] == example_grpc[key], key
