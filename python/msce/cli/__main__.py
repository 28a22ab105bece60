"""``python -m msce.cli ...``: the same as the ``msce`` command."""

from msce.cli import main

raise SystemExit(main())
