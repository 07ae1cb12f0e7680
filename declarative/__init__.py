"""declarative package; re-exports only."""
