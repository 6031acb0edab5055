"""The Envoy gateway mapping: routes.yaml, path normalization, and the Check decision."""
