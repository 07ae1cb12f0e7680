"""metrics package; re-exports only."""
