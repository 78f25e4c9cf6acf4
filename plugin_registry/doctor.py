"""Moved to :mod:`plugin_registry.cli.doctor`; this name works for one more release."""

from __future__ import annotations

import sys
import warnings

from plugin_registry.cli import doctor as _moved

warnings.warn(
    "plugin_registry.doctor moved to plugin_registry.cli.doctor; "
    "import it from there (the old name goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
# The same module object under the old name: attributes set through either name agree.
sys.modules[__name__] = _moved
