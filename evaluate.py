"""Evaluate a checkpoint or a folder of predictions: ``python evaluate.py ckpt_path=... | pred_dir=...``.

A checkout's entry point; installed, the same command is `shapelab-evaluate` (shapelab/cli/evaluate.py).
"""
from shapelab.cli.evaluate import main

if __name__ == "__main__":
    main()
