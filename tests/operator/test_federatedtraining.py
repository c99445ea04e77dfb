"""FederatedTraining in a cluster: children on accept, rounds followed from the coordinator, stop, resume, delete.

The operator runs for real against the emulator; the coordinator is played by the same status
server the real one uses (:class:`hyperfl.coordinator_status.StatusPublisher`) on 127.0.0.1,
whose rounds each test advances.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from controllers.federatedtraining_loop import coordinator_phase
from controllers.flpods import RESOURCE_ENV, coordinator_pod
from hyperfl.api import HISTORY_LIMIT, FederatedTraining, FederatedTrainingStatus, RoundRecord
from hyperfl.coordinator_status import StatusPublisher
from mlscale.api import ADMITTED, Condition
from tests.operator.harness import NAMESPACE, Cluster, RunningOperator, start_operator

pytestmark = pytest.mark.operator

BASE = f"/apis/mlscale.dev/v1alpha1/namespaces/{NAMESPACE}"
PATH = f"{BASE}/federatedtrainings/digits"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
SERVICES = f"/api/v1/namespaces/{NAMESPACE}/services"
LABEL = "mlscale.dev/federatedtraining"
COMPONENT = "app.kubernetes.io/component"
TARGET = 0.9

REPO = Path(__file__).resolve().parents[2]
TRAINING: dict[str, Any] = {
    "apiVersion": "mlscale.dev/v1alpha1",
    "kind": "FederatedTraining",
    "metadata": {"name": "digits", "namespace": NAMESPACE, "generation": 1},
    "spec": {
        "model": {"builder": "examples.hyperfl.models:digits_mlp"},
        "target": {"metric": "accuracy", "value": TARGET},
        "data": {"clients": 4, "partition": {"type": "dirichlet", "alpha": 0.5}},
        "rounds": {"max": 100, "clientsPerRound": 2},
        "image": "registry.example/mlscale-hyperfl:0.1",
        "clientResources": {"cores": "500m", "memory": "1Gi"},
        "checkpointClaim": "fl-ckpt",
    },
}


def accuracy_at(round_: int) -> float:
    """A learning curve that stays below the target for 60 rounds."""
    return round(0.3 + 0.005 * round_, 4)


def coordinator_status(rounds: int, *, last_accuracy: float | None = None) -> FederatedTrainingStatus:
    """What the coordinator publishes after ``rounds`` rounds (its own history bounded like the real one)."""
    records = [
        RoundRecord(round=r, accuracy=accuracy_at(r), loss=1.0 / r, clients=2, epochs=3, seconds=0.5)
        for r in range(1, rounds + 1)
    ]
    if last_accuracy is not None and records:
        records[-1] = records[-1].model_copy(update={"accuracy": last_accuracy})
    risk = Condition(type="TargetAtRisk", status="False", reason="OnTrack", message=f"round {rounds} on track")
    return FederatedTrainingStatus(
        phase="Running",
        start_time=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        round=rounds,
        accuracy=records[-1].accuracy if records else None,
        history=records[-HISTORY_LIMIT:],
        predicted_rounds_to_target=rounds + 10,
        client_epochs=6 * rounds,
        checkpoint=f"/checkpoints/digits/global-round-{rounds:06d}.npz" if rounds else None,
        control_state={"regulator": {"rounds": rounds}},
        conditions=[risk],
    )


@pytest.fixture
def coordinator(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StatusPublisher]:
    with StatusPublisher("127.0.0.1", 0) as publisher:
        monkeypatch.setenv("MLSCALE_FL_COORDINATOR_URL", publisher.url)
        monkeypatch.setenv("MLSCALE_FL_POLL_SECONDS", "0.1")
        yield publisher


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions", []):
        if cond["type"] == type_:
            return dict(cond)
    return None


def submitted(obj: dict[str, Any] | None) -> bool:
    cond = condition(obj, "Submitted")
    return cond is not None and cond["status"] == "True"


def status_round(obj: dict[str, Any] | None) -> int:
    return int(((obj or {}).get("status") or {}).get("round") or 0)


async def children(cluster: Cluster, plural_path: str, name: str = "digits") -> list[dict[str, Any]]:
    listing = await cluster.get(plural_path)
    items = (listing or {}).get("items", [])
    return [i for i in items if (i["metadata"].get("labels") or {}).get(LABEL) == name]


def of_component(items: list[dict[str, Any]], component: str) -> list[dict[str, Any]]:
    return [i for i in items if i["metadata"]["labels"].get(COMPONENT) == component]


def events(cluster: Cluster, reason: str) -> list[dict[str, Any]]:
    return [e for e in cluster.events("digits") if e.get("reason") == reason]


async def start(cluster: Cluster, body: dict[str, Any] = TRAINING) -> dict[str, Any]:
    created = await cluster.create(f"{BASE}/federatedtrainings", body)
    await cluster.wait_for(PATH, submitted)
    return created


async def test_accept_creates_coordinator_clients_and_services(
    coordinator: StatusPublisher, operator: RunningOperator, cluster: Cluster
) -> None:
    created = await start(cluster)
    uid = created["metadata"]["uid"]
    pods = await children(cluster, PODS)
    clients = sorted(of_component(pods, "client"), key=lambda p: p["metadata"]["name"])
    (coordinator_pod,) = of_component(pods, "coordinator")
    assert [p["metadata"]["name"] for p in clients] == [f"digits-client-{i}" for i in range(4)]
    for pod in [*clients, coordinator_pod]:
        (owner,) = pod["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "FederatedTraining",
            "digits",
            uid,
            True,
        )
        assert pod["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlscale"
        assert pod["spec"]["containers"][0]["image"] == "registry.example/mlscale-hyperfl:0.1"

    client_labels = clients[0]["metadata"]["labels"]
    for pod in clients:
        (spread,) = pod["spec"]["topologySpreadConstraints"]
        assert spread["topologyKey"] == "topology.kubernetes.io/zone"
        assert (spread["maxSkew"], spread["whenUnsatisfiable"]) == (1, "ScheduleAnyway")
        # The constraint counts exactly this training's client pods.
        selected = [
            p for p in pods if spread["labelSelector"]["matchLabels"].items() <= p["metadata"]["labels"].items()
        ]
        assert sorted(p["metadata"]["name"] for p in selected) == [c["metadata"]["name"] for c in clients]
        container = pod["spec"]["containers"][0]
        expected = {"cpu": "500m", "memory": "1024Mi"}
        assert container["resources"] == {"requests": expected, "limits": expected}
        command = container["command"]
        assert command[:3] == ["python", "-m", "hyperfl.worker"]
        assert command[command.index("--clients") + 1] == "4"
        assert command[command.index("--partition") + 1] == "dirichlet"

    # The headless Service names every client; the coordinator calls them by those names.
    services = {s["metadata"]["name"]: s for s in await children(cluster, SERVICES)}
    headless = services["digits-clients"]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"].items() <= client_labels.items()
    assert not headless["spec"]["selector"].items() <= coordinator_pod["metadata"]["labels"].items()
    assert headless["metadata"]["ownerReferences"][0]["uid"] == uid
    command = coordinator_pod["spec"]["containers"][0]["command"]
    assert command[:3] == ["python", "-m", "hyperfl.coordinator"]
    template = command[command.index("--worker-url-template") + 1]
    for index, pod in enumerate(clients):
        host = template.format(index=index).removeprefix("http://").split(":")[0]
        assert host == f"{pod['spec']['hostname']}.{pod['spec']['subdomain']}.{NAMESPACE}.svc"
        assert pod["spec"]["subdomain"] == "digits-clients"
    assert services["digits-coordinator"]["spec"]["selector"].items() <= coordinator_pod["metadata"]["labels"].items()

    # Checkpoints live on the claim.
    volumes = {v["name"]: v for v in coordinator_pod["spec"]["volumes"]}
    mounts = coordinator_pod["spec"]["containers"][0]["volumeMounts"]
    (mount,) = [m for m in mounts if m["name"] in volumes]
    assert volumes[mount["name"]]["persistentVolumeClaim"] == {"claimName": "fl-ckpt"}
    assert command[command.index("--checkpoint-dir") + 1].startswith(mount["mountPath"] + "/")
    assert {e["type"] for e in await cluster.wait_for_events("digits", "Submitted")} == {"Normal"}


async def test_without_claim_checkpoints_go_to_an_empty_dir(
    coordinator: StatusPublisher, operator: RunningOperator, cluster: Cluster
) -> None:
    body = copy.deepcopy(TRAINING)
    del body["spec"]["checkpointClaim"]
    await start(cluster, body)
    (pod,) = of_component(await children(cluster, PODS), "coordinator")
    (volume,) = pod["spec"]["volumes"]
    assert volume == {"name": volume["name"], "emptyDir": {}}


async def test_templates_reach_the_coordinator_and_every_client(
    coordinator: StatusPublisher, operator: RunningOperator, cluster: Cluster
) -> None:
    body = copy.deepcopy(TRAINING)
    gpu = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    body["spec"]["coordinatorTemplate"] = {
        "spec": {
            "nodeSelector": {"pool": "system"},
            "containers": [{"name": "coordinator", "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}}}],
        }
    }
    body["spec"]["clientTemplate"] = {
        "metadata": {"labels": {"team": "fl"}},
        "spec": {
            "tolerations": [gpu],
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "client-data"}}],
            "containers": [{"name": "worker", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        },
    }
    await start(cluster, body)
    pods = await children(cluster, PODS)
    (coordinator_pod,) = of_component(pods, "coordinator")
    assert coordinator_pod["spec"]["nodeSelector"] == {"pool": "system"}
    (container,) = coordinator_pod["spec"]["containers"]
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"}}
    assert container["command"][:3] == ["python", "-m", "hyperfl.coordinator"]  # not replaced
    assert "tolerations" not in coordinator_pod["spec"]
    clients = of_component(pods, "client")
    assert len(clients) == 4
    for pod in clients:
        assert pod["spec"]["tolerations"] == [gpu]
        assert pod["metadata"]["labels"]["team"] == "fl"
        assert pod["metadata"]["labels"][LABEL] == "digits"  # the operator's labels kept
        assert pod["spec"]["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
        (worker,) = pod["spec"]["containers"]
        assert worker["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
        assert worker["resources"]["limits"] == {"cpu": "500m", "memory": "1024Mi"}  # from clientResources


async def test_template_that_sets_what_the_operator_decides_is_refused(
    coordinator: StatusPublisher, operator: RunningOperator, cluster: Cluster
) -> None:
    body = copy.deepcopy(TRAINING)
    body["spec"]["clientTemplate"] = {
        "spec": {
            "topologySpreadConstraints": [],
            "containers": [{"name": "worker", "resources": {"limits": {"cpu": "4"}}}],
        }
    }
    body["spec"]["coordinatorTemplate"] = {"spec": {"volumes": [{"name": "checkpoints", "emptyDir": {}}]}}
    await cluster.create(f"{BASE}/federatedtrainings", body)
    obj = await cluster.wait_for(PATH, lambda o: (condition(o, "Accepted") or {}).get("status") == "False")
    accepted = condition(obj, "Accepted")
    assert accepted is not None
    message = accepted["message"]
    assert "spec.clientTemplate: spec.topologySpreadConstraints: clients are spread over" in message
    assert "spec.containers[worker].resources: a client's CPU and memory come from spec.clientResources" in message
    assert "spec.coordinatorTemplate: spec.volumes[checkpoints]" in message
    assert await children(cluster, PODS) == []


async def test_missing_image_is_refused_without_children(
    coordinator: StatusPublisher, operator: RunningOperator, cluster: Cluster
) -> None:
    body = copy.deepcopy(TRAINING)
    del body["spec"]["image"]
    await cluster.create(f"{BASE}/federatedtrainings", body)
    obj = await cluster.wait_for(PATH, lambda o: (condition(o, "Submitted") or {}).get("status") == "False")
    cond = condition(obj, "Submitted")
    assert cond is not None
    assert cond["reason"] == "ImageMissing"
    assert "spec.image" in cond["message"]
    assert condition(obj, "Accepted") is not None
    assert (obj or {})["status"]["phase"] == "Pending"
    # At least one Warning (the emulator has no resourceVersion, so kopf may handle a stale event twice).
    assert {e["type"] for e in await cluster.wait_for_events("digits", "ImageMissing")} == {"Warning"}
    assert await children(cluster, PODS) == []


async def test_status_follows_the_coordinator_rounds(
    coordinator: StatusPublisher, operator: RunningOperator, cluster: Cluster
) -> None:
    await start(cluster)
    obj = await cluster.get(PATH)
    assert (obj or {})["status"]["phase"] == "Pending"  # the coordinator has not started rounds yet
    coordinator.publish(coordinator_status(1))
    await cluster.wait_for(PATH, lambda o: status_round(o) == 1)
    coordinator.publish(coordinator_status(3))
    # On the emulator (no resourceVersion) kopf may replay a stale admission that writes Pending
    # for an instant; the daemon puts Running back at its next period.
    obj = await cluster.wait_for(
        PATH, lambda o: status_round(o) == 3 and ((o or {}).get("status") or {}).get("phase") == "Running"
    )
    status = (obj or {})["status"]
    assert [r["round"] for r in status["history"]] == [1, 2, 3]
    assert status["accuracy"] == accuracy_at(3)
    assert status["predictedRoundsToTarget"] == 13
    assert status["clientEpochs"] == 18
    assert status["checkpoint"] == "fl-ckpt:/digits/global-round-000003.npz"
    assert status["controlState"] == {"regulator": {"rounds": 3}}
    risk = condition(obj, "TargetAtRisk")
    assert risk is not None
    assert (risk["status"], risk["reason"]) == ("False", "OnTrack")
    assert len(await cluster.wait_for_events("digits", "Running")) == 1

    url = f"http://127.0.0.1:{operator.memo['metrics_port']}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        text = await response.text()
    labels = f'{{name="digits",namespace="{NAMESPACE}"}}'
    assert f"mlscale_federatedtraining_round{labels} 3.0" in text
    assert f"mlscale_federatedtraining_client_epochs{labels} 18.0" in text
    assert f"mlscale_federatedtraining_accuracy{labels} {accuracy_at(3)}" in text
    assert 'mlscale_resources{kind="FederatedTraining",phase="Running"} 1.0' in text


async def test_history_keeps_the_last_50_rounds(
    coordinator: StatusPublisher, operator: RunningOperator, cluster: Cluster
) -> None:
    await start(cluster)
    coordinator.publish(coordinator_status(30))
    await cluster.wait_for(PATH, lambda o: status_round(o) == 30)
    coordinator.publish(coordinator_status(60))
    obj = await cluster.wait_for(PATH, lambda o: status_round(o) == 60)
    rounds = [r["round"] for r in (obj or {})["status"]["history"]]
    assert rounds == list(range(11, 61))


@pytest.mark.parametrize(
    "ending",
    [(0.93, 100, "TargetReached", "Normal"), (0.5, 3, "BudgetExhausted", "Warning")],
    ids=["target-reached", "rounds-exhausted"],
)
async def test_end_of_run_stops_the_clients(
    ending: tuple[float, int, str, str], coordinator: StatusPublisher, operator: RunningOperator, cluster: Cluster
) -> None:
    last_accuracy, rounds_max, phase, event_type = ending
    body = copy.deepcopy(TRAINING)
    body["spec"]["rounds"]["max"] = rounds_max
    await start(cluster, body)
    coordinator.publish(coordinator_status(2))
    await cluster.wait_for(PATH, lambda o: status_round(o) == 2)
    assert len(of_component(await children(cluster, PODS), "client")) == 4
    # The coordinator has not said the run is over yet: the operator applies the stopping rule itself.
    coordinator.publish(coordinator_status(3, last_accuracy=last_accuracy))
    obj = await cluster.wait_for(PATH, lambda o: ((o or {}).get("status") or {}).get("phase") == phase)
    status = (obj or {})["status"]
    assert (status["round"], status["accuracy"]) == (3, last_accuracy)
    assert status["completionTime"]
    # kopf posts Events in the background: the status can be written first.
    assert [e["type"] for e in await cluster.wait_for_events("digits", phase)] == [event_type]
    pods = await cluster.wait_for(PODS, lambda o: not of_component(o_items(o), "client"))
    assert [p["metadata"]["name"] for p in o_items(pods) if LABEL in p["metadata"]["labels"]] == ["digits-coordinator"]
    if phase == "TargetReached":
        risk = condition(obj, "TargetAtRisk")
        assert risk is not None
        assert (risk["status"], risk["reason"]) == ("False", "TargetReached")
    # Rounds a coordinator runs past the end are neither recorded nor given clients.
    coordinator.publish(coordinator_status(4))
    await _settle()
    after = await cluster.get(PATH)
    assert status_round(after) == 3
    assert not of_component(await children(cluster, PODS), "client")


def o_items(listing: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list((listing or {}).get("items", []))


async def _settle(polls: int = 5) -> None:
    """Let the operator run a few periods (0.1 s each)."""
    await asyncio.sleep(0.1 * polls)


async def test_restart_resumes_without_repeating_rounds(
    coordinator: StatusPublisher, kubeconfig: Path, cluster: Cluster
) -> None:
    first = await start_operator()
    try:
        await start(cluster)
        coordinator.publish(coordinator_status(3))
        await cluster.wait_for(PATH, lambda o: status_round(o) == 3)
    finally:
        await first.stop()
    announced = len(events(cluster, "Submitted"))
    coordinator.publish(coordinator_status(5))  # rounds run while no operator watched
    second = await start_operator()
    try:
        obj = await cluster.wait_for(PATH, lambda o: status_round(o) == 5)
        assert [r["round"] for r in (obj or {})["status"]["history"]] == [1, 2, 3, 4, 5]
        assert second.memo["status_store"].statuses[("FederatedTraining", NAMESPACE, "digits")]["round"] == 5
        # A coordinator that starts over behind the status does not move the round counter back.
        coordinator.publish(coordinator_status(2))
        await _settle()
        obj = await cluster.get(PATH)
        assert status_round(obj) == 5
        assert [r["round"] for r in (obj or {})["status"]["history"]] == [1, 2, 3, 4, 5]
    finally:
        await second.stop()
    # Resuming announces nothing again and creates no second set of children.
    assert len(events(cluster, "Running")) == 1
    assert len(events(cluster, "Submitted")) == announced
    assert len(await children(cluster, PODS)) == 5


async def test_vanished_client_pod_is_recreated(
    coordinator: StatusPublisher, operator: RunningOperator, cluster: Cluster
) -> None:
    await start(cluster)
    await cluster.delete(f"{PODS}/digits-client-2")
    pod = await cluster.wait_for(f"{PODS}/digits-client-2", lambda o: o is not None)
    assert (pod or {})["metadata"]["ownerReferences"][0]["name"] == "digits"


async def test_delete_removes_every_child(
    coordinator: StatusPublisher, operator: RunningOperator, cluster: Cluster
) -> None:
    await start(cluster)
    coordinator.publish(coordinator_status(1))
    await cluster.wait_for(PATH, lambda o: status_round(o) == 1)
    assert len(await children(cluster, PODS)) == 5
    assert len(await children(cluster, SERVICES)) == 2
    await cluster.delete(PATH)
    await cluster.wait_for(PATH, lambda o: o is None)
    assert await children(cluster, PODS) == []
    assert await children(cluster, SERVICES) == []
    assert ("FederatedTraining", NAMESPACE, "digits") not in operator.memo["status_store"].statuses


async def test_failed_coordinator_pod_fails_the_run(
    coordinator: StatusPublisher, operator: RunningOperator, cluster: Cluster
) -> None:
    await start(cluster)
    coordinator.publish(coordinator_status(2))
    await cluster.wait_for(PATH, lambda o: status_round(o) == 2)
    terminated = {"exitCode": 137, "reason": "OOMKilled"}
    container = {"name": "coordinator", "state": {"terminated": terminated}}
    await cluster.patch(
        f"{PODS}/digits-coordinator/status", {"status": {"phase": "Failed", "containerStatuses": [container]}}
    )
    obj = await cluster.wait_for(PATH, lambda o: ((o or {}).get("status") or {}).get("phase") == "Failed")
    assert status_round(obj) == 2
    # The emulator has no resourceVersion, so a stale copy may announce the failure twice.
    failed = await cluster.wait_for_events("digits", "Failed")
    assert all(e["type"] == "Warning" for e in failed)
    assert any("OOMKilled" in e["message"] for e in failed)
    await cluster.wait_for(PODS, lambda o: not of_component(o_items(o), "client"))


def test_the_coordinator_ends_with_its_container_whatever_a_sidecar_does() -> None:
    sidecar = {"name": "aaa-log-shipper", "state": {"running": {}}}
    done = {"name": "coordinator", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    assert coordinator_phase({"status": {"phase": "Running", "containerStatuses": [sidecar, done]}}) == "Succeeded"
    crashed = {"name": "coordinator", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}
    # OnFailure: a crashed coordinator restarts in its pod, which stays Running.
    assert coordinator_phase({"status": {"phase": "Running", "containerStatuses": [sidecar, crashed]}}) == "Running"
    assert coordinator_phase({"status": {"phase": "Failed", "containerStatuses": [sidecar, crashed]}}) == "Failed"
    assert coordinator_phase(None) is None


async def test_pods_that_cannot_run_are_named_with_their_reason_and_fix(
    coordinator: StatusPublisher, operator: RunningOperator, cluster: Cluster
) -> None:
    await start(cluster)
    # A client's container cannot be created: the Secret its template names is missing.
    missing = {
        "name": "client",
        "ready": False,
        "state": {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "dataset-creds" not found'}},
    }
    await cluster.patch(
        f"{PODS}/digits-client-1/status", {"status": {"phase": "Pending", "containerStatuses": [missing]}}
    )

    def held(o: dict[str, Any] | None) -> bool:
        cond = condition(o, "PodsWaiting")
        return cond is not None and cond["status"] == "True"

    obj = await cluster.wait_for(PATH, held)
    waiting = condition(obj, "PodsWaiting")
    assert waiting is not None
    assert waiting["reason"] == "CreateContainerConfigError"
    assert "The client pod digits-client-1 is held up" in waiting["message"]
    assert 'secret "dataset-creds" not found' in waiting["message"]
    assert "spec.clientTemplate" in waiting["message"]
    assert (obj or {})["status"]["phase"] == "Pending"
    assert [e["type"] for e in await cluster.wait_for_events("digits", "PodsWaiting")] == ["Warning"]

    # Rounds recorded meanwhile keep the condition.
    coordinator.publish(coordinator_status(1))
    obj = await cluster.wait_for(PATH, lambda o: status_round(o) == 1)
    assert held(obj)

    # The Secret is there now: the client runs, nothing is held up.
    running = {**missing, "ready": True, "state": {"running": {"startedAt": "2026-12-07T10:00:00Z"}}}
    await cluster.patch(
        f"{PODS}/digits-client-1/status", {"status": {"phase": "Running", "containerStatuses": [running]}}
    )

    def cleared(o: dict[str, Any] | None) -> bool:
        cond = condition(o, "PodsWaiting")
        return cond is not None and cond["status"] == "False"

    obj = await cluster.wait_for(PATH, cleared)
    assert (condition(obj, "PodsWaiting") or {})["reason"] == "PodsRunning"
    assert [e["type"] for e in await cluster.wait_for_events("digits", "PodsRunning")] == ["Normal"]


async def test_a_run_that_ends_while_a_client_is_held_clears_pods_waiting(
    coordinator: StatusPublisher, operator: RunningOperator, cluster: Cluster
) -> None:
    await start(cluster)
    pulling = {"name": "client", "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}
    await cluster.patch(
        f"{PODS}/digits-client-2/status", {"status": {"phase": "Pending", "containerStatuses": [pulling]}}
    )
    await cluster.wait_for(PATH, lambda o: (condition(o, "PodsWaiting") or {}).get("status") == "True")
    # The coordinator gives up waiting for that client.
    gave_up = {"exitCode": 1, "reason": "Error", "message": "1 client workers did not answer in 600s"}
    container = {"name": "coordinator", "state": {"terminated": gave_up}}
    await cluster.patch(
        f"{PODS}/digits-coordinator/status", {"status": {"phase": "Failed", "containerStatuses": [container]}}
    )
    obj = await cluster.wait_for(PATH, lambda o: ((o or {}).get("status") or {}).get("phase") == "Failed")
    cleared = condition(obj, "PodsWaiting")
    assert cleared is not None
    assert (cleared["status"], cleared["reason"]) == ("False", "RunEnded")


@pytest.mark.parametrize("example", ["federatedtraining-digits-iid.yaml", "federatedtraining-digits-dirichlet.yaml"])
@pytest.mark.parametrize("client_cores", [None, "500m", "1.25", 2])
def test_the_coordinator_reads_the_resource_the_operator_hands_it(example: str, client_cores: Any) -> None:
    # The coordinator validates the document in its pod's environment as a resource: quantities
    # and durations must come back in forms the API accepts (300 s as 300, 0.5 cores as '500m'),
    # and the defaults filled in (alpha for an iid split) must not make it refuse its own spec.
    document = yaml.safe_load((REPO / "examples" / example).read_text())
    document["metadata"]["namespace"] = NAMESPACE
    document["spec"].update(image="registry.example/hyperfl:1", deadline="4m30s")
    if client_cores is not None:
        document["spec"]["clientResources"] = {"cores": client_cores, "memory": "1536Mi"}
    job = FederatedTraining.model_validate(document)
    pod = coordinator_pod(job, NAMESPACE)
    (env,) = [e for e in pod["spec"]["containers"][0]["env"] if e["name"] == RESOURCE_ENV]
    read = FederatedTraining.model_validate_json(env["value"], context=ADMITTED)
    assert read.spec.model_dump(exclude={"coordinator_template", "client_template"}) == job.spec.model_dump(
        exclude={"coordinator_template", "client_template"}
    )
    assert read.spec.deadline == 270
