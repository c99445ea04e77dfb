"""Per-key statistics of generated sensor readings (PySpark ``aggregateByKey``).

Usage: aggregate_by_key.py --records 1000000 --keys 1000 --partitions 16

Each record is (sensor, reading); the job computes count, mean and maximum per sensor in one
``aggregateByKey`` and prints the five sensors with the highest mean.
"""

from __future__ import annotations

import argparse
import random

from pyspark import SparkContext


def readings_of(partition: int, count: int, keys: int) -> list[tuple[int, float]]:
    rng = random.Random(partition)
    return [(s, rng.gauss(s % 50, 5.0)) for s in (rng.randrange(keys) for _ in range(count))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=16)
    args = parser.parse_args()

    sc = SparkContext(appName="aggregate-by-key")
    per_partition, keys = args.records // args.partitions, args.keys
    data = sc.parallelize(range(args.partitions), args.partitions).flatMap(
        lambda p: readings_of(p, per_partition, keys)
    )
    stats = data.aggregateByKey(
        (0, 0.0, float("-inf")),
        lambda acc, x: (acc[0] + 1, acc[1] + x, max(acc[2], x)),
        lambda a, b: (a[0] + b[0], a[1] + b[1], max(a[2], b[2])),
        args.partitions,
    ).mapValues(lambda acc: (acc[0], acc[1] / acc[0], acc[2]))
    for sensor, (count, mean, peak) in stats.takeOrdered(5, key=lambda item: -item[1][1]):
        print(f"sensor {sensor}: {count} readings, mean {mean:.2f}, max {peak:.2f}")
    sc.stop()


if __name__ == "__main__":
    main()
