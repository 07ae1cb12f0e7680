"""Compare runs: ``python compare.py <run or sweep dirs / globs ...> [--out DIR] [--metrics m1 m2]``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shapelab.compare import compare
from shapelab.errors import ShapelabError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", help="run directories, sweep directories or glob patterns")
    parser.add_argument("--out", type=Path, default=Path("reports/compare"), help="output folder")
    parser.add_argument("--metrics", nargs="*", default=None, help="metrics to show (default: all val/ and eval/)")
    parser.add_argument("--split", default="test", help="evaluation split to read (eval/<split>/)")
    args = parser.parse_args(argv)
    try:
        report = compare(args.runs, args.out, args.metrics, args.split)
    except ShapelabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {report} and {report.with_suffix('.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
