"""Our own tests use the same plugin services use (enabled with -p in pyproject)."""
