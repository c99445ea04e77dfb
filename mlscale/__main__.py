"""``python -m mlscale``."""

from mlscale.cli import main

raise SystemExit(main())
