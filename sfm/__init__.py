"""Structure-from-Motion through COLMAP (pycolmap): cameras for real multi-view captures."""
