"""Sort generated key/value records by key (PySpark ``sortByKey``).

Usage: sortbykey.py --records 1000000 --partitions 16

Keys are seeded pseudo-random 12-character strings. Prints the smallest and largest keys
and checks that the output is sorted.
"""

from __future__ import annotations

import argparse
import itertools
import random
import string

from pyspark import RDD, SparkContext


def records_of(partition: int, count: int) -> list[tuple[str, int]]:
    rng = random.Random(partition)
    letters = string.ascii_lowercase
    return [("".join(rng.choices(letters, k=12)), rng.randrange(1_000_000)) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=16)
    args = parser.parse_args()

    sc = SparkContext(appName="sortbykey")
    per_partition = args.records // args.partitions
    data = sc.parallelize(range(args.partitions), args.partitions).flatMap(lambda p: records_of(p, per_partition))
    ordered: RDD[tuple[str, int]] = data.sortByKey(numPartitions=args.partitions)
    # Per partition: its first and last key and whether it is sorted inside.
    bounds = ordered.mapPartitions(
        lambda it: [
            (keys[0], keys[-1], all(a <= b for a, b in itertools.pairwise(keys)))
            for keys in [[k for k, _ in it]]
            if keys
        ]
    ).collect()
    in_order = all(b[2] for b in bounds) and all(x[1] <= y[0] for x, y in itertools.pairwise(bounds))
    print(f"sorted {args.records} records: first {bounds[0][0]} last {bounds[-1][1]} in order: {in_order}")
    sc.stop()


if __name__ == "__main__":
    main()
