"""models/networks package; re-exports only."""
