"""Moved to :mod:`plugin_registry.resolver.hardware`; this name works for one more release."""

from __future__ import annotations

import sys
import warnings

from plugin_registry.resolver import hardware as _moved

warnings.warn(
    "plugin_registry.hardware moved to plugin_registry.resolver.hardware; import it from there "
    "(the old name goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
# The same module object under the old name: attributes set through either name agree.
sys.modules[__name__] = _moved
