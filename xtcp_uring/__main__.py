"""`python -m xtcp_uring`: see ``xtcp_uring.app.cli``."""

from .app.cli import main

raise SystemExit(main())
