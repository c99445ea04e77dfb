"""The enrich example's tasks really wait for its lookup service (no Spark needed to see it)."""

from __future__ import annotations

import time
from types import ModuleType

import pytest

from tests.unit.scripts import load_script


@pytest.fixture(scope="module")
def enrich() -> ModuleType:
    return load_script("examples/dynaspark/enrich.py", "enrich_example")


def test_a_partition_is_enriched_batch_by_batch_through_the_service(enrich: ModuleType) -> None:
    server = enrich.serve_lookups("127.0.0.1", 0.05)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/lookup"
        started = time.monotonic()
        scored = list(enrich.enrich_partition(3, 120, 50, 100, url))
        waited = time.monotonic() - started
        again = list(enrich.enrich_partition(3, 120, 50, 100, url))
    finally:
        server.shutdown()
    assert len(scored) == 120
    assert {segment for segment, _ in scored} <= set(range(12))
    assert scored == again  # generated data: the same partition, the same events and scores
    assert waited >= 3 * 0.05  # three batches (50 + 50 + 20 events), one request each
    # A user's features come from the service and shape the score.
    event = (7, 0, [0.5] * enrich.FEATURES)
    assert enrich.score(event, enrich._features(7)) != enrich.score(event, enrich._features(8))
