"""shapelab run plumbing: errors, config validation, callbacks, logging and the evaluation pipeline."""
