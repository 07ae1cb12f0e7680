"""renderers package; re-exports only."""
