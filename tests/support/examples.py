"""The repository's examples/ folder, and its Envoy bootstrap parsed as Envoy's own protos."""

from __future__ import annotations

import yaml
from envoy.config.bootstrap.v3 import bootstrap_pb2

# Imported so that json_format can resolve the typed_config Any types of the example.
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2  # noqa: F401
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import (  # noqa: F401
    http_connection_manager_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2  # noqa: F401
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401
from google.protobuf import json_format

from tests.support.server import REPO

EXAMPLES = REPO / "examples"


def envoy_bootstrap() -> bootstrap_pb2.Bootstrap:
    """examples/envoy/envoy.yaml as a Bootstrap message (an unknown field is an error)."""
    document = yaml.safe_load((EXAMPLES / "envoy" / "envoy.yaml").read_text())
    return json_format.ParseDict(document, bootstrap_pb2.Bootstrap())
