"""Train a shapelab model: ``python train.py [experiment=<name>] [key=value ...]`` (see README).

A checkout's entry point; installed, the same command is `shapelab-train` (shapelab/cli/train.py).
"""
from shapelab.cli.train import main

if __name__ == "__main__":
    main()
