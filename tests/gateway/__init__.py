"""Tests of the Check pipeline: identity -> route -> policy, its shortcuts and dry runs."""
