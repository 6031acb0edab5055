"""`make bench`: pdp's measuring harness (floors, pdp serve, peers, sweeps), in one run."""
