"""Tests of the gateway mapping: paths, routes.yaml, the Check decision."""
