"""losses package; re-exports only."""
