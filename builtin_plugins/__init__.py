"""The plugins that ship with plugin-registry.

They register through the ``plugin_registry`` entry-point group exactly as a
third-party package does (see ``registration``); the core has no special path
for them.
"""
