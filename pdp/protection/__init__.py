"""Edge protection: rate limits, abuse detectors and blocks around the gateway's answers."""

from pdp.protection.guard import Protection
from pdp.protection.memory import MemoryState

__all__ = ["MemoryState", "Protection"]
