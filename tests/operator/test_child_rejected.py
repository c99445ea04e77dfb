"""FederatedTraining and InferenceService pods the API server refuses for what they are.

The operator has the API server admit their pods in a dry run before it creates anything; a
refusal that only a spec change can fix (Pod Security admission here) sets ``Submitted=False``,
reason ``ChildRejected``, with the server's message and the fix, and is not retried with
backoff. A running InferenceService whose changed spec is refused keeps serving, and its loop
keeps running.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import kmock
import pytest

from controllers.inferenceservice_service import FIXES as IS_FIXES
from controllers.kube import KubeError, changed_conditions, patch_status, with_conditions
from controllers.refusals import rejection
from tests.operator.harness import NAMESPACE, Cluster, RunningOperator, ValidatingEmulator, validating_emulator
from tests.operator.inferenceservice_helpers import (
    DEPLOYMENTS,
    FakeRouter,
    condition,
    condition_is,
    create_replica_pods,
    fake_router,
    service,
    service_path,
)
from tests.operator.test_federatedtraining import TRAINING

pytestmark = pytest.mark.operator

BASE = f"/apis/mlscale.dev/v1alpha1/namespaces/{NAMESPACE}"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
TYPO = {"spec": {"nodeSelecter": {"pool": "fl"}}}
NON_ROOT = {"spec": {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}}}


@pytest.fixture
async def emulator(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[kmock.KubernetesEmulator]:
    async for handler in validating_emulator(monkeypatch):
        yield handler


@pytest.fixture
async def router(kubeconfig: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeRouter]:
    async for fake in fake_router(monkeypatch):
        yield fake


async def not_retried() -> None:
    """Backoff retries would come 0.2, 0.4, 0.8 s apart: none comes (kopf may run a handler twice)."""
    await asyncio.sleep(0.5)
    refusals = ValidatingEmulator.pod_refusals
    await asyncio.sleep(1.5)
    assert ValidatingEmulator.pod_refusals == refusals <= 4


async def registrations_go_on(router: FakeRouter, periods: int) -> bool:
    """Whether the loop registers the replicas with the router ``periods`` more times within 5 s."""
    registered = len(router.registered)
    for _ in range(100):
        if len(router.registered) >= registered + periods:
            return True
        await asyncio.sleep(0.05)
    return False


async def pods_of(cluster: Cluster, label: str, name: str) -> list[str]:
    listing = await cluster.get(PODS)
    items = (listing or {}).get("items", [])
    return sorted(i["metadata"]["name"] for i in items if (i["metadata"].get("labels") or {}).get(label) == name)


async def test_training_whose_pods_a_namespace_policy_refuses_starts_nothing_until_fixed(
    operator: RunningOperator, cluster: Cluster
) -> None:
    ValidatingEmulator.restricted = True
    path = f"{BASE}/federatedtrainings/digits"
    await cluster.create(f"{BASE}/federatedtrainings", TRAINING)
    obj = await cluster.wait_for(path, lambda o: condition_is(o, "Submitted", "False"))
    submitted = condition(obj, "Submitted")
    assert submitted is not None
    assert submitted["reason"] == "ChildRejected"
    assert "Pod digits-coordinator (a dry run)" in submitted["message"]
    assert 'violates PodSecurity "restricted:latest"' in submitted["message"]
    assert "spec.coordinatorTemplate and spec.clientTemplate" in submitted["message"]
    assert "annotate the FederatedTraining" in submitted["message"]
    assert {e["type"] for e in await cluster.wait_for_events("digits", "ChildRejected")} == {"Warning"}
    # No coordinator waits for clients that cannot come.
    assert await pods_of(cluster, "mlscale.dev/federatedtraining", "digits") == []
    await not_retried()

    # Both templates run as non-root now: the training starts.
    fixed = {"coordinatorTemplate": NON_ROOT, "clientTemplate": NON_ROOT}
    await cluster.patch(path, {"spec": fixed})
    await cluster.wait_for(path, lambda o: condition_is(o, "Submitted", "True"))
    names = await pods_of(cluster, "mlscale.dev/federatedtraining", "digits")
    assert names == ["digits-client-0", "digits-client-1", "digits-client-2", "digits-client-3", "digits-coordinator"]
    pod = await cluster.get(f"{PODS}/digits-client-1")
    assert (pod or {})["spec"]["securityContext"]["runAsNonRoot"] is True


async def test_a_misspelt_template_field_is_refused_not_dropped(operator: RunningOperator, cluster: Cluster) -> None:
    # Without strict field validation the API server would create the pods without the field,
    # and the clients would run on any node, with only a warning in the operator's log.
    path = f"{BASE}/federatedtrainings/digits"
    await cluster.create(
        f"{BASE}/federatedtrainings", {**TRAINING, "spec": {**TRAINING["spec"], "clientTemplate": TYPO}}
    )
    obj = await cluster.wait_for(path, lambda o: condition_is(o, "Submitted", "False"))
    submitted = condition(obj, "Submitted")
    assert submitted is not None
    assert submitted["reason"] == "ChildRejected"
    assert 'strict decoding error: unknown field "spec.nodeSelecter"' in submitted["message"]
    assert "Fix what the API server names in spec.coordinatorTemplate and spec.clientTemplate" in submitted["message"]
    assert await pods_of(cluster, "mlscale.dev/federatedtraining", "digits") == []
    assert all(run["spec"] for run in ValidatingEmulator.dry_runs)

    spelt = {"nodeSelecter": None, "nodeSelector": {"pool": "fl"}}
    await cluster.patch(path, {"spec": {"clientTemplate": {"spec": spelt}}})
    await cluster.wait_for(path, lambda o: condition_is(o, "Submitted", "True"))
    pod = await cluster.get(f"{PODS}/digits-client-0")
    assert (pod or {})["spec"]["nodeSelector"] == {"pool": "fl"}


async def test_a_training_whose_pod_exists_already_starts(operator: RunningOperator, cluster: Cluster) -> None:
    # A start that was cut short created a client pod; its dry run must not clash with it.
    await cluster.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "digits-client-0"}, "spec": {}})
    path = f"{BASE}/federatedtrainings/digits"
    await cluster.create(f"{BASE}/federatedtrainings", TRAINING)
    await cluster.wait_for(path, lambda o: condition_is(o, "Submitted", "True"))
    assert len(ValidatingEmulator.dry_runs) == 2  # the coordinator and a client


async def test_service_whose_pods_are_refused_creates_no_deployment_and_a_refused_change_keeps_it_serving(
    router: FakeRouter, operator: RunningOperator, cluster: Cluster
) -> None:
    ValidatingEmulator.restricted = True
    await cluster.create(f"{BASE}/inferenceservices", service())
    obj = await cluster.wait_for(service_path(), lambda o: condition_is(o, "Submitted", "False"))
    submitted = condition(obj, "Submitted")
    assert submitted is not None
    assert submitted["reason"] == "ChildRejected"
    assert "a pod of Deployment cnn-cpu (a dry run)" in submitted["message"]
    assert "spec.template, spec.gpu.template and spec.routerTemplate" in submitted["message"]
    assert "keep running" not in submitted["message"]  # nothing runs yet
    # No ReplicaSet left trying to create pods the namespace refuses.
    assert (await cluster.get(f"{DEPLOYMENTS}/cnn-cpu")) is None
    await not_retried()

    # The namespace is relabelled (no spec change): an annotation has the operator try again.
    ValidatingEmulator.restricted = False
    await cluster.patch(service_path(), {"metadata": {"annotations": {"retry": "1"}}})
    await cluster.wait_for(service_path(), lambda o: condition_is(o, "Submitted", "True"))
    await create_replica_pods(cluster, "cnn-cpu", 1)
    await cluster.wait_for(service_path(), lambda o: ((o or {}).get("status") or {}).get("phase") == "Running")

    # The namespace enforces `restricted` again, and a changed spec would give the replicas pods it
    # refuses, and add GPU replicas.
    ValidatingEmulator.restricted = True
    before = await cluster.get(f"{DEPLOYMENTS}/cnn-cpu")
    changed = copy.deepcopy((obj or {})["spec"])
    changed["batching"] = {"maxBatchSize": 8, "maxDelayMs": 2}
    changed["gpu"] = {"count": 1, "resourceName": "nvidia.com/gpu", "alpha": 0.25}
    await cluster.patch(service_path(), {"spec": changed})
    obj = await cluster.wait_for(service_path(), lambda o: condition_is(o, "Submitted", "False"))
    submitted = condition(obj, "Submitted")
    assert submitted is not None
    assert submitted["reason"] == "ChildRejected"
    assert "The replicas and the router keep running as they are, sized by the operator" in submitted["message"]
    after = await cluster.get(f"{DEPLOYMENTS}/cnn-cpu")
    assert (after or {})["spec"]["template"] == (before or {})["spec"]["template"]
    # The loop goes on: it registers the replicas with the router every period.
    assert await registrations_go_on(router, 3)
    # ... and writes only the conditions it changed: the refusal stays where the handler put it.
    assert condition_is(await cluster.get(service_path()), "Submitted", "False")
    # It serves by the spec the children were made from: no GPU Deployment the namespace would
    # refuse pods to, the replicas still registered with their batch slots.
    assert await cluster.get(f"{DEPLOYMENTS}/cnn-gpu") is None
    assert {r["name"] for r in router.registered[-1]} == {"cnn-cpu-0"}


def test_a_loop_writes_the_conditions_it_changed_over_those_stored_now() -> None:
    read = [
        {"type": "Accepted", "status": "True", "reason": "Valid"},
        {"type": "Submitted", "status": "True", "reason": "ChildrenCreated"},
        {"type": "SloMet", "status": "True", "reason": "WithinSlo"},
    ]
    wanted = [*read[:2], {"type": "SloMet", "status": "False", "reason": "SloViolated"}]
    wanted.append({"type": "PodsWaiting", "status": "False", "reason": "PodsRunning"})
    changed = changed_conditions(read, wanted)
    assert [c["type"] for c in changed] == ["SloMet", "PodsWaiting"]
    assert changed_conditions(read, read) == []
    # A handler refused a change meanwhile.
    stored = [read[0], {"type": "Submitted", "status": "False", "reason": "ChildRejected"}, read[2]]
    assert with_conditions(stored, changed) == [stored[0], stored[1], changed[0], changed[1]]


class _StatusApi:
    """Stores one object; a handler's write lands between the loop's read and its patch."""

    def __init__(self, conditions: list[dict[str, Any]]) -> None:
        self.stored = {"status": {"conditions": conditions}}
        self.patches: list[dict[str, Any]] = []

    async def get(self, path: str) -> dict[str, Any]:
        return copy.deepcopy(self.stored)

    async def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.patches.append(body)
        self.stored["status"].update(copy.deepcopy(body["status"]))
        return self.stored


async def test_a_handlers_refusal_written_during_a_period_is_not_put_back() -> None:
    read = [
        {"type": "Submitted", "status": "True", "reason": "ChildrenCreated"},
        {"type": "SloMet", "status": "True", "reason": "WithinSlo"},
    ]
    refused = {"type": "Submitted", "status": "False", "reason": "ChildRejected"}
    api = _StatusApi([refused, read[1]])  # what is stored once the handler wrote
    slo_violated = {"type": "SloMet", "status": "False", "reason": "SloViolated"}
    await patch_status(api, "/x", {"latencyMs": 120.0, "conditions": [read[0], slo_violated]}, read=read)  # type: ignore[arg-type]
    assert api.stored["status"]["conditions"] == [refused, slo_violated]
    assert api.stored["status"]["latencyMs"] == 120.0
    # A period that changed no condition writes none.
    await patch_status(api, "/x", {"latencyMs": 90.0, "conditions": read}, read=read)  # type: ignore[arg-type]
    assert "conditions" not in api.patches[-1]["status"]


def served_batch(deployment: dict[str, Any] | None) -> int | None:
    """The batch size in the spec a CPU Deployment keeps as the one it was made from."""
    annotations = ((deployment or {}).get("metadata") or {}).get("annotations") or {}
    return json.loads(annotations.get("mlscale.dev/served-spec", "{}")).get("batching", {}).get("maxBatchSize")


async def test_a_full_quota_refuses_no_spec_and_an_unchanged_template_needs_no_dry_run(
    router: FakeRouter, operator: RunningOperator, cluster: Cluster
) -> None:
    await cluster.create(f"{BASE}/inferenceservices", service())
    await cluster.wait_for(service_path(), lambda o: condition_is(o, "Submitted", "True"))
    assert served_batch(await cluster.get(f"{DEPLOYMENTS}/cnn-cpu")) == 16
    checked = len(ValidatingEmulator.dry_runs)
    assert checked == 2  # a pod of the CPU replicas' and of the router's Deployment

    # The service's own replicas fill the namespace's quota: a changed spec is still applied (its
    # rolling update may go ahead), and the served spec follows it.
    ValidatingEmulator.quota_full = True
    changed = copy.deepcopy(service()["spec"])
    changed["batching"] = {"maxBatchSize": 8, "maxDelayMs": 2}
    await cluster.patch(service_path(), {"spec": changed})

    await cluster.wait_for(f"{DEPLOYMENTS}/cnn-cpu", lambda o: served_batch(o) == 8)
    assert condition_is(await cluster.get(service_path()), "Submitted", "True")
    assert len(ValidatingEmulator.dry_runs) == checked + 1  # the CPU replicas' template changed, not the router's
    checked = len(ValidatingEmulator.dry_runs)

    # A handler run with nothing new to admit (an annotation) asks for no dry run.
    await cluster.patch(service_path(), {"metadata": {"annotations": {"retry": "1"}}})
    await asyncio.sleep(1.0)
    assert len(ValidatingEmulator.dry_runs) == checked


def test_the_same_refusal_of_a_generated_pod_reads_the_same_each_time() -> None:
    messages = set()
    for suffix in ("x7k2p", "q9z4m"):
        refusal = KubeError(
            403, "Forbidden", f'pods "cnn-cpu-{suffix}" is forbidden: violates PodSecurity "restricted"'
        )
        rejected = rejection(refusal, "a pod of Deployment cnn-cpu", IS_FIXES, generated="cnn-cpu-")
        assert rejected is not None
        messages.add(rejected.message)
    assert messages == {'pods "cnn-cpu-xxxxx" is forbidden: violates PodSecurity "restricted"'}
    unstated = KubeError(
        403, "Forbidden", 'pods "cnn-cpu-x7k2p" is forbidden: failed quota: compute: must specify limits.cpu for: proxy'
    )
    rejected = rejection(unstated, "a pod of Deployment cnn-cpu", IS_FIXES, generated="cnn-cpu-")
    assert rejected is not None
    assert "requests and limits" in rejected.advice()
    full = KubeError(403, "Forbidden", 'pods "x" is forbidden: exceeded quota: compute, requested: cpu=2')
    assert rejection(full, "a pod", IS_FIXES) is None  # clears as pods end


async def test_an_invalid_edit_of_a_running_service_leaves_it_served(
    router: FakeRouter, operator: RunningOperator, cluster: Cluster
) -> None:
    await cluster.create(f"{BASE}/inferenceservices", service())
    await cluster.wait_for(service_path(), lambda o: condition_is(o, "Submitted", "True"))
    await create_replica_pods(cluster, "cnn-cpu", 1)
    await cluster.wait_for(service_path(), lambda o: ((o or {}).get("status") or {}).get("phase") == "Running")
    await cluster.patch(service_path(), {"spec": {"replicas": {"min": 3, "max": 2}}})
    await cluster.wait_for(service_path(), lambda o: condition_is(o, "Accepted", "False"))
    # Admission refused the edit; the loop goes on by the spec the replicas were made from.
    assert await registrations_go_on(router, 3)
