"""Tests of the routes.yaml language: compiling routes, schema checks, paths, request context."""
