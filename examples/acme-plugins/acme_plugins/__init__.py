"""ACME plugins for plugin-registry. Kept empty: the registration module imports it."""
