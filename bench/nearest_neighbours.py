"""Benchmark: nearest neighbours for evaluation metrics, KD-tree (ours) vs chunked torch.cdist (dense).

    python bench/nearest_neighbours.py            # 100k x 100k points (OccNet's evaluation size)
    python bench/nearest_neighbours.py --quick    # 20k x 20k (< 1 min)

Both find, for each of N query points, the nearest of M reference points (uniform in the unit cube,
float64). Ours: ``metrics.nearest.nearest_neighbours`` (pykdtree, tree built inside the timing); also scipy's
cKDTree (workers=-1, tree built inside the timing) for reference. Dense: ``torch.cdist`` on chunks of the queries,
then min. The results are compared.
Last line: ``nearest_neighbours kdtree_s=<> cdist_s=<> speedup=<cdist/kdtree> ckdtree_s=<>``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.spatial import cKDTree
from shapelab.metrics.nearest import nearest_neighbours


def dense_nearest(query: np.ndarray, reference: np.ndarray, chunk: int) -> np.ndarray:
    """Distance to the nearest reference point by chunked brute force (O(N·M))."""
    reference_t = torch.from_numpy(reference)
    parts = [torch.cdist(torch.from_numpy(query[start:start + chunk]), reference_t).min(dim=1).values
             for start in range(0, len(query), chunk)]
    return torch.cat(parts).numpy()


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20k x 20k points")
    parser.add_argument("--points", type=int, default=None, help="N = M (default 100000, 20000 with --quick)")
    parser.add_argument("--chunk", type=int, default=1024, help="query rows per torch.cdist call")
    args = parser.parse_args()
    count = args.points or (20_000 if args.quick else 100_000)
    rng = np.random.default_rng(0)
    query, reference = rng.random((count, 3)), rng.random((count, 3))

    (kdtree_d, _), kdtree_s = timed(nearest_neighbours, query, reference)
    (ckdtree_d, _), ckdtree_s = timed(lambda q, r: cKDTree(r).query(q, k=1, workers=-1), query, reference)
    cdist_d, cdist_s = timed(dense_nearest, query, reference, args.chunk)
    error = max(np.abs(kdtree_d - cdist_d).max(), np.abs(kdtree_d - ckdtree_d).max())
    print(f"{count:,d} x {count:,d} points, torch threads {torch.get_num_threads()}")
    print(f"  pykdtree (ours)     : {kdtree_s:8.3f} s")
    print(f"  scipy cKDTree       : {ckdtree_s:8.3f} s (workers=-1)")
    print(f"  chunked torch.cdist : {cdist_s:8.3f} s")
    print(f"  max |distance difference| {error:.2e}")
    print(f"nearest_neighbours kdtree_s={kdtree_s:.3f} cdist_s={cdist_s:.2f} speedup={cdist_s / kdtree_s:.0f} "
          f"ckdtree_s={ckdtree_s:.3f} points={count}")


if __name__ == "__main__":
    main()
