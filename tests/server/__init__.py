"""Unit tests of pdp/server without a server: the protobuf conversions."""
