"""Sphinx configuration: Markdown pages (MyST), API reference from the docstrings."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "plugin-registry"
author = "plugin-registry developers"
copyright = "2026, plugin-registry developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "dev", "hardware", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
html_theme = "furo"
html_title = "plugin-registry"

autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
# Optional libraries the API pages mention but a docs build need not install.
autodoc_mock_imports = ["bitsandbytes", "deepspeed", "torch_xla", "transformer_engine", "mpi4py"]
nitpicky = False
# PluginInfo is importable from plugin_registry and from plugin_registry.records.
suppress_warnings = ["ref.python"]
