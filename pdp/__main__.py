"""`python -m pdp`: the same CLI as the `pdp` console script."""

from pdp.cli.main import main

if __name__ == "__main__":  # not when a worker process re-imports the parent's main module
    raise SystemExit(main())
