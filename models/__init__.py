"""models package; re-exports only."""
