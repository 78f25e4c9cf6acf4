"""Moved to :mod:`plugin_registry.testing.reference_loop`; this name works for one more release."""

from __future__ import annotations

import sys
import warnings

from plugin_registry.testing import reference_loop as _moved

warnings.warn(
    "plugin_registry.reference_loop moved to plugin_registry.testing.reference_loop; "
    "import it from there (the old name goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
# The same module object under the old name: attributes set through either name agree.
sys.modules[__name__] = _moved
