"""Preprocess raw meshes into the standard formats: ``python preprocess.py input_dir=... name=...``.

A checkout's entry point; installed, the same command is `shapelab-preprocess` (shapelab/cli/preprocess.py).
"""
from shapelab.cli.preprocess import main

if __name__ == "__main__":
    main()
