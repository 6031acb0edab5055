"""docs/deploy.md names files that exist and the flags and services pdp really has."""

from __future__ import annotations

import argparse
import re

from pdp.cli.main import build_parser
from pdp.server.app import HEALTH_SERVICES
from tests.support.deploy import REPO

DOC = (REPO / "docs" / "deploy.md").read_text()


def test_every_path_the_guide_names_exists() -> None:
    paths = set(re.findall(r"`((?:deploy|examples|tests)/[^`\s]*)`", DOC))
    paths |= {"Dockerfile"}
    assert len(paths) > 10
    for path in paths:
        assert (REPO / path.rstrip("/")).exists(), path


def test_every_pdp_flag_the_guide_names_exists() -> None:
    known: set[str] = set()
    parsers = [build_parser()]
    while parsers:  # every command and subcommand (`pdp bundle build`)
        for action in parsers.pop()._actions:
            known.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", DOC))
    others = {"--build-arg", "--read-only", "--tmpfs", "--cap-drop", "--security-opt", "--items"}
    others |= {"--name", "--namespace", "--service"}  # docker, bundle_configmap.py, pdp-probe
    assert "--wait-for-bundle" in named and "--workers" in named
    assert named - others <= known, (named - others) - known


def test_the_guide_names_every_health_service_and_how_a_signed_remote_bundle_gets_there() -> None:
    for service in HEALTH_SERVICES:
        assert f"`{service}`" in DOC or service == ""
    assert "**A signed remote bundle.**" in DOC and "--verification-key" in DOC
