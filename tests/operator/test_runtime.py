"""The operator's own surface: metrics, liveness, and resuming after a restart."""

from __future__ import annotations

import copy
from pathlib import Path

import aiohttp
import pytest

from tests.operator.harness import NAMESPACE, Cluster, RunningOperator, start_operator
from tests.operator.test_admission import VALID, accepted

pytestmark = pytest.mark.operator

BASE = f"/apis/mlscale.dev/v1alpha1/namespaces/{NAMESPACE}"


async def test_metrics_and_liveness_are_served(operator: RunningOperator, cluster: Cluster) -> None:
    await cluster.create(f"{BASE}/deadlinejobs", VALID["deadlinejobs"])
    await cluster.wait_for(f"{BASE}/deadlinejobs/pagerank", lambda o: accepted(o) == "True")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{operator.memo['metrics_port']}/metrics") as response:
            assert response.status == 200
            text = await response.text()
        async with http.get(f"http://127.0.0.1:{operator.memo['health_port']}/healthz") as response:
            assert response.status == 200
            health = await response.json()
    assert 'mlscale_resources{kind="DeadlineJob",phase="Pending"} 1.0' in text
    assert "# TYPE mlscale_deadlinejob_allocated_cores gauge" in text
    assert health["status"] == "ok"


async def test_restart_resumes_every_resource(kubeconfig: Path, cluster: Cluster) -> None:
    first = await start_operator()
    try:
        await cluster.create(f"{BASE}/deadlinejobs", VALID["deadlinejobs"])
        before = await cluster.wait_for(f"{BASE}/deadlinejobs/pagerank", lambda o: accepted(o) == "True")
        announced = await cluster.wait_for_events("pagerank", "Accepted")
    finally:
        await first.stop()
    assert before is not None
    # Created while no operator runs: the next one must pick it up.
    await cluster.create(f"{BASE}/inferenceservices", VALID["inferenceservices"])
    bad = copy.deepcopy(VALID["federatedtrainings"])
    bad["spec"]["target"]["value"] = 2
    await cluster.create(f"{BASE}/federatedtrainings", bad)

    second = await start_operator()
    try:
        await cluster.wait_for(f"{BASE}/inferenceservices/cnn", lambda o: accepted(o) == "True")
        await cluster.wait_for(f"{BASE}/federatedtrainings/digits", lambda o: accepted(o) == "False")
        after = await cluster.get(f"{BASE}/deadlinejobs/pagerank")
        assert after is not None
        assert after["status"]["conditions"] == before["status"]["conditions"]
        store = second.memo["status_store"].statuses
        assert ("DeadlineJob", NAMESPACE, "pagerank") in store
    finally:
        await second.stop()
    # Resuming an accepted resource changes nothing and announces nothing again.
    again = [e for e in cluster.events("pagerank") if e.get("reason") == "Accepted"]
    assert len(again) == len(announced) >= 1


# kopf leaves its authenticator coroutine unawaited when a startup handler stops it.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_bad_setting_stops_the_operator_at_startup_with_the_fix(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLSCALE_EXECUTOR_CPU_METER_PORT", "4049x")
    with pytest.raises(Exception, match="handlers failed"):  # kopf's ActivityError (not public)
        await start_operator()
    assert "MLSCALE_EXECUTOR_CPU_METER_PORT='4049x': give a port number, or 0 to turn the meter off" in caplog.text
