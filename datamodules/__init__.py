"""datamodules package; re-exports only."""
