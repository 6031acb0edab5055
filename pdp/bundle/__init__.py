"""Policy bundles: files on disk -> compiled cedarpy handles -> the active snapshot."""

from __future__ import annotations

import os

from pdp.bundle.compiler import CompiledBundle, compile_bundle
from pdp.bundle.loader import read_bundle

__all__ = ["CompiledBundle", "load_bundle"]


def load_bundle(root: str | os.PathLike[str]) -> CompiledBundle:
    """Read and compile the bundle at `root`; raise BundleError with every problem."""
    return compile_bundle(read_bundle(root))
