"""The Envoy and Istio examples parse as what they claim to be, with the settings pdp needs."""

from __future__ import annotations

import yaml
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from tests.support.examples import EXAMPLES, envoy_bootstrap


def test_envoy_example_is_a_valid_bootstrap_with_a_fail_closed_ext_authz() -> None:
    bootstrap = envoy_bootstrap()
    (listener,) = bootstrap.static_resources.listeners
    hcm = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(hcm)
    assert hcm.normalize_path.value and hcm.merge_slashes
    assert hcm.path_with_escaped_slashes_action == hcm.REJECT_REQUEST
    names = [f.name for f in hcm.http_filters]
    assert names == ["envoy.filters.http.ext_authz", "envoy.filters.http.router"]
    ext_authz = ext_authz_pb2.ExtAuthz()
    hcm.http_filters[0].typed_config.Unpack(ext_authz)
    assert ext_authz.failure_mode_allow is False
    assert ext_authz.include_peer_certificate is True
    assert not ext_authz.HasField("with_request_body")
    assert ext_authz.grpc_service.envoy_grpc.cluster_name == "pdp"
    assert 0 < ext_authz.grpc_service.timeout.ToMilliseconds() <= 1000
    clusters = {c.name: c for c in bootstrap.static_resources.clusters}
    assert "pdp" in clusters


def test_envoy_example_route_overrides_use_pdp_context_extension_keys() -> None:
    bootstrap = envoy_bootstrap()
    hcm = hcm_pb2.HttpConnectionManager()
    bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.Unpack(hcm)
    found = {}
    for route in hcm.route_config.virtual_hosts[0].routes:
        per_route = route.typed_per_filter_config.get("envoy.filters.http.ext_authz")
        if per_route is not None:
            settings = ext_authz_pb2.ExtAuthzPerRoute()
            per_route.Unpack(settings)
            found.update(settings.check_settings.context_extensions)
    assert found == {"pdp.action": "readOrder", "pdp.resource": 'Order::"o-1001"'}


def test_istio_examples_wire_a_custom_provider_named_like_the_mesh_config() -> None:
    policy, entry = yaml.safe_load_all(
        (EXAMPLES / "istio" / "authorization-policy.yaml").read_text()
    )
    mesh = yaml.safe_load((EXAMPLES / "istio" / "meshconfig.yaml").read_text())
    (provider,) = mesh["spec"]["meshConfig"]["extensionProviders"]
    assert policy["kind"] == "AuthorizationPolicy" and policy["spec"]["action"] == "CUSTOM"
    assert policy["spec"]["provider"]["name"] == provider["name"]
    grpc = provider["envoyExtAuthzGrpc"]
    assert grpc["failOpen"] is False and grpc["service"] in entry["spec"]["hosts"]
    assert "includeRequestBodyInCheck" not in grpc
