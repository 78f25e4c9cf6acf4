"""Moved to :mod:`plugin_registry.lightning`; this name works for one more release."""

from __future__ import annotations

import sys
import warnings

from plugin_registry import lightning as _moved

warnings.warn(
    "plugin_registry.lightning_bridge moved to plugin_registry.lightning; "
    "import it from there (the old name goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
# The same module object under the old name: attributes set through either name agree.
sys.modules[__name__] = _moved
