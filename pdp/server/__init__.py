"""The gRPC edge: pdp.v1.Authorizer, Envoy ext_authz, health and reflection on one port."""
