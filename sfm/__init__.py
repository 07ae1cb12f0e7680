"""sfm package; re-exports only."""
