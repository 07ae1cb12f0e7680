"""The command-line entry points (``shapelab-train`` = ``python train.py``, ...)."""
