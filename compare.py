"""Compare runs: ``python compare.py <run or sweep dirs / globs ...> [--out DIR] [--metrics m1 m2]``.

A checkout's entry point; installed, the same command is `shapelab-compare` (shapelab/cli/compare.py).
"""
import sys

from shapelab.cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
