"""PageRank on a generated link graph (PySpark RDDs).

Usage: pagerank.py --pages 20000 --links 8 --iterations 6 --partitions 16

Every page links to ``--links`` pages chosen by a seeded generator, so the graph (and the
Spark stages) are the same on every run. Prints the five highest-ranked pages.
"""

from __future__ import annotations

import argparse
import random

from pyspark import SparkContext


def links_of(page: int, pages: int, links: int) -> tuple[int, list[int]]:
    rng = random.Random(page)
    # A skewed graph: low page numbers are linked to more often, as popular pages are.
    targets = sorted({int(pages * rng.random() ** 2) for _ in range(links)} - {page})
    return page, targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=20000)
    parser.add_argument("--links", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--partitions", type=int, default=16)
    args = parser.parse_args()

    sc = SparkContext(appName="pagerank")
    pages, n_links = args.pages, args.links
    graph = sc.parallelize(range(pages), args.partitions).map(lambda p: links_of(p, pages, n_links)).cache()
    ranks = graph.mapValues(lambda _: 1.0)
    for _ in range(args.iterations):
        contributions = graph.join(ranks, args.partitions).flatMap(
            lambda item: [(t, item[1][1] / max(1, len(item[1][0]))) for t in item[1][0]]
        )
        ranks = contributions.reduceByKey(lambda a, b: a + b, args.partitions).mapValues(lambda r: 0.15 + 0.85 * r)
    top = ranks.takeOrdered(5, key=lambda item: -item[1])
    for page, rank in top:
        print(f"page {page}: rank {rank:.3f}")
    sc.stop()


if __name__ == "__main__":
    main()
