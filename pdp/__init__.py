"""pdp: a policy decision point for the Cedar policy language."""

__version__ = "0.1.0"
