"""Compare runs: ``python compare.py <run or sweep dirs / globs ...> [--out DIR] [--metrics m1 m2]``.

Writes report.md, PNG plots and a self-contained report.html from the runs' local files (CSV logs, evaluation
summaries, saved configs); no account, no network. Docs: README.md "Comparing runs and dashboards".
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shapelab.errors import ShapelabError

EXAMPLES = """common commands:
  python compare.py logs/train/multiruns/<time>                  every run of a sweep
  python compare.py logs/train/runs/2026-* --out reports/mine     runs matched by a glob
  python compare.py <runs> --metrics val/sdf_l1 eval/iou          only these metrics
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python compare.py", description=__doc__.split("\n\n", 1)[1], epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", help="run directories, sweep directories or glob patterns")
    parser.add_argument("--out", type=Path, default=Path("reports/compare"), help="output folder")
    parser.add_argument("--metrics", nargs="*", default=None, help="metrics to show (default: all val/ and eval/)")
    parser.add_argument("--split", default="test", help="evaluation split to read (eval/<split>/)")
    args = parser.parse_args(argv)
    from shapelab.compare import compare

    try:
        report = compare(args.runs, args.out, args.metrics, args.split)
    except ShapelabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {report} and {report.with_suffix('.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
