"""``python -m plugin_registry``: the ``plugin-registry`` command."""

from plugin_registry.cli import main

raise SystemExit(main())
