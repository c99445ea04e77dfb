"""Events enriched through a lookup service, then scored per segment (an I/O-bound Spark job).

Usage: enrich.py --events 48000 --batch 50 --service-ms 20 --partitions 16

Each task generates events, looks their users up in batches over HTTP and scores every event
with the features it got back; a ``reduceByKey`` then totals the scores per segment. The
lookup service stands in for a remote feature store: the driver serves it on its own address
(``spark.driver.bindAddress``, called at ``spark.driver.host``; 127.0.0.1 on one machine) and
answers each request after ``--service-ms``. Its tasks wait for the service part of the time, so an executor uses only
part of the cores it is given, however many that is.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from pyspark import SparkContext

FEATURES = 8


def _features(user: int) -> list[float]:
    rng = random.Random(user)
    return [rng.uniform(-1.0, 1.0) for _ in range(FEATURES)]


def serve_lookups(host: str, service_s: float) -> ThreadingHTTPServer:
    """Start the lookup service on ``host`` (an address to bind; a free port) in a daemon thread."""

    class Lookup(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ids = parse_qs(urlparse(self.path).query).get("ids", [""])[0]
            time.sleep(service_s)  # the remote store's response time
            body = json.dumps({u: _features(int(u)) for u in ids.split(",") if u}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Lookup)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def score(event: tuple[int, int, list[float]], features: list[float]) -> float:
    """A small model over the event's signal and the user's features (pure Python work)."""
    _, _, signal = event
    total = 0.0
    for step in range(6):
        for w, x in zip(features, signal, strict=True):
            total += math.tanh(w * x + 0.1 * step) * math.exp(-abs(x) * 0.01)
    return total


def enrich_partition(partition: int, events: int, batch: int, users: int, url: str) -> Iterator[tuple[int, float]]:
    """Generate one partition's events, look their users up in batches, score each event."""
    rng = random.Random(partition)
    for start in range(0, events, batch):
        chunk = [
            (rng.randrange(users), rng.randrange(12), [rng.gauss(0.0, 1.0) for _ in range(FEATURES)])
            for _ in range(min(batch, events - start))
        ]
        ids = ",".join(str(u) for u in sorted({u for u, _, _ in chunk}))
        with urllib.request.urlopen(f"{url}?ids={ids}", timeout=30) as response:
            features = json.loads(response.read())
        for event in chunk:
            yield event[1], score(event, features[str(event[0])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=48_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--service-ms", type=float, default=20.0)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--partitions", type=int, default=16)
    args = parser.parse_args()

    sc = SparkContext(appName="enrich")
    # Served where the driver listens, and called at the address executors know it by, as
    # Spark's own driver endpoints are (locally 127.0.0.1 both; in a pod 0.0.0.0 and its Service).
    host = sc.getConf().get("spark.driver.host", "127.0.0.1")
    server = serve_lookups(sc.getConf().get("spark.driver.bindAddress", host), args.service_ms / 1000.0)
    url = f"http://{host}:{server.server_address[1]}/lookup"
    per_partition, batch, users = args.events // args.partitions, args.batch, args.users
    scores = (
        sc.parallelize(range(args.partitions), args.partitions)
        .flatMap(lambda p: enrich_partition(p, per_partition, batch, users, url))
        .reduceByKey(lambda a, b: a + b, args.partitions)
    )
    for segment, total in sorted(scores.collect(), key=lambda item: -item[1])[:5]:
        print(f"segment {segment}: score {total:.1f}")
    server.shutdown()
    sc.stop()


if __name__ == "__main__":
    main()
