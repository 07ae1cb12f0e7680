"""Cameras for photos of an object with COLMAP: ``python sfm.py images_dir=<photos> [out_dir=...]`` (see README).

A checkout's entry point; installed, the same command is `shapelab-sfm` (shapelab/cli/sfm.py).
"""
from shapelab.cli.sfm import main

if __name__ == "__main__":
    main()
