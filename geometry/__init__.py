"""geometry package; re-exports only."""
