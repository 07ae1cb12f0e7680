"""datamodules/formats package; re-exports only."""
