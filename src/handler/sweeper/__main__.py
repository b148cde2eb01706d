"""`python -m sweeper` (with src/handler on the path): the `ecr-sweeper` command."""

from .cli import main

raise SystemExit(main())
