"""The evaluation pipeline (reconstruct → score → collect → report); see `shapelab.evaluation.pipeline`."""
from shapelab.evaluation.pipeline import evaluate_model, evaluate_predictions

__all__ = ["evaluate_model", "evaluate_predictions"]
