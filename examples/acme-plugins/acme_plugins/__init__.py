"""acme-plugins: plugins found by plugin-registry through the entry point in pyproject.toml."""
