"""`python -m pdp`: the same CLI as the `pdp` console script."""

from pdp.cli.main import main

raise SystemExit(main())
