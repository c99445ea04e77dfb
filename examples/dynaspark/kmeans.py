"""K-means clustering of generated points (PySpark RDDs, one job per iteration).

Usage: kmeans.py --points 200000 --k 8 --dims 4 --iterations 5 --partitions 16

Points are drawn around ``--k`` seeded centres; the algorithm starts from the first ``k``
points and prints the centres it finds.
"""

from __future__ import annotations

import argparse
import functools
import random

from pyspark import SparkContext


def points_of(partition: int, count: int, k: int, dims: int) -> list[tuple[float, ...]]:
    rng = random.Random(partition)
    centres = [[10.0 * random.Random(1000 + c).random() for _ in range(dims)] for c in range(k)]
    return [tuple(x + rng.gauss(0.0, 1.0) for x in centres[rng.randrange(k)]) for _ in range(count)]


def closest(point: tuple[float, ...], centres: list[tuple[float, ...]]) -> int:
    best, best_d = 0, float("inf")
    for i, centre in enumerate(centres):
        d = sum((a - b) ** 2 for a, b in zip(point, centre, strict=True))
        if d < best_d:
            best, best_d = i, d
    return best


def assign(point: tuple[float, ...], centres: list[tuple[float, ...]]) -> tuple[int, tuple[tuple[float, ...], int]]:
    return closest(point, centres), (point, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=200000)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--dims", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=16)
    args = parser.parse_args()

    sc = SparkContext(appName="kmeans")
    per_partition = args.points // args.partitions
    k, dims = args.k, args.dims
    points = (
        sc.parallelize(range(args.partitions), args.partitions)
        .flatMap(lambda p: points_of(p, per_partition, k, dims))
        .cache()
    )
    centres = points.take(k)
    for _ in range(args.iterations):
        current = centres
        sums = (
            points.map(functools.partial(assign, centres=current))
            .reduceByKey(lambda a, b: (tuple(x + y for x, y in zip(a[0], b[0], strict=True)), a[1] + b[1]), 4)
            .collectAsMap()
        )
        centres = [tuple(x / sums[i][1] for x in sums[i][0]) if i in sums else current[i] for i in range(k)]
    for centre in sorted(centres):
        print("centre", " ".join(f"{x:.2f}" for x in centre))
    sc.stop()


if __name__ == "__main__":
    main()
