"""Test support: real servers on loopback, bundle builders."""
