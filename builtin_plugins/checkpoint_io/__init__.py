"""Built-in checkpoint IO plugins: torch, async, xla."""
