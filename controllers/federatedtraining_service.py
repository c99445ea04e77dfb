"""What the operator does when a FederatedTraining is created, changed, resumed or deleted.

Create/update/resume validate the resource (:mod:`controllers.admission`) and, the first time an
accepted training can run, create its children (:mod:`controllers.flpods`): the clients' headless
Service, the coordinator's Service, one pod per client and the coordinator pod, each with an
ownerReference and the training's labels. A training without ``spec.image`` is refused with
``Submitted=False`` (reason ``ImageMissing``) and a Warning Event. The API server admits the
coordinator pod and a client pod in a dry run first: a pod it refuses for what it is (invalid, Pod
Security, a LimitRange) sets ``Submitted=False``, reason ``ChildRejected``, with the fix
(:mod:`controllers.refusals`), and nothing is created until the spec changes. Following the rounds is the
daemon's job (:mod:`controllers.federatedtraining_loop`). Delete removes every child explicitly:
a cluster's garbage collector would do it through the ownerReferences, but nothing relies on one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import kopf

from controllers import admission
from controllers.federatedtraining_status import TERMINAL_PHASES
from controllers.flpods import (
    CLIENT,
    children,
    clients_service_name,
    component_labels,
    coordinator_pod_name,
    coordinator_service_name,
    training_labels,
)
from controllers.kube import KubeApi, adopt, core_path, delete_labelled, owner_document, scoped_api
from controllers.refusals import ChildRejectedError, Fixes, refusals_named, report_rejection
from hyperfl.api import FederatedTraining
from mlscale.api import SUBMITTED, conditions_of, find_condition, utcnow
from mlscale.kinds import KINDS

INFO = KINDS["FederatedTraining"]
FIXES = Fixes(
    kind="FederatedTraining",
    templates="spec.coordinatorTemplate and spec.clientTemplate",
    sizes="spec.clientResources (the clients' cores and memory) or the coordinator container's resources in "
    "spec.coordinatorTemplate",
)
"""Where a FederatedTraining's spec is changed to have a refused pod accepted."""


async def reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger) -> None:
    """Validate the training; the first time it can run, create its children.

    Args:
        body: The FederatedTraining.
        patch: kopf's patch of it (conditions, phase).
        memo: The operator's shared state.
        logger: The per-object logger.
    """
    status = await admission.current_status(INFO, body, memo)
    model = admission.admit(INFO, body, patch, memo, logger, status=status)
    if model is None or status.get("phase") in TERMINAL_PHASES:
        return
    job = cast(FederatedTraining, model)
    generation = body.metadata.get("generation")
    conditions = conditions_of(patch.status)
    previous = find_condition(conditions, SUBMITTED)
    now = utcnow()
    if not job.spec.image:
        message = (
            "spec.image is required in a cluster: name an image with TensorFlow Federated and the "
            "model builder's module, e.g. 'registry.example/mlscale-hyperfl:0.1'"
        )
        admission.set_submitted(
            body,
            patch,
            conditions,
            submitted=False,
            reason="ImageMissing",
            message=message,
            generation=generation,
            now=now,
        )
        logger.warning("not starting %s: %s", body.metadata.name, message)
        return
    if previous is not None and previous.status == "True":
        return  # the children exist: the daemon keeps them and follows the rounds from here on
    namespace = str(body.metadata.namespace)
    try:
        async with scoped_api(memo) as api:
            await admit_pods(api, owner_document(body), job, namespace)
            await create_children(api, owner_document(body), job, namespace)
    except ChildRejectedError as exc:
        message = report_rejection(body, patch, conditions, exc, generation=generation, now=now)
        logger.warning("not starting %s: %s", body.metadata.name, message)
        return
    name = job.metadata.name
    message = (
        f"coordinator pod {coordinator_pod_name(name)}, {job.spec.data.clients} client pods, Services "
        f"{clients_service_name(name)} and {coordinator_service_name(name)} created"
    )
    admission.set_submitted(
        body,
        patch,
        conditions,
        submitted=True,
        reason="ChildrenCreated",
        message=message,
        generation=generation,
        now=now,
    )
    logger.info("started %s: %s", name, message)


async def admit_pods(api: KubeApi, owner: Mapping[str, Any], job: FederatedTraining, namespace: str) -> None:
    """Have the API server admit the coordinator pod and a client pod in a dry run, before anything is created.

    Raises:
        ChildRejectedError: when validation, Pod Security admission or a LimitRange refuses one,
            so no coordinator waits for clients that will never come.
    """
    labels = training_labels(job.metadata.name)
    pods = [child for plural, child in children(job, namespace) if plural == "pods"]
    coordinator = next(p for p in pods if p["metadata"]["name"] == coordinator_pod_name(job.metadata.name))
    client = next(p for p in pods if p is not coordinator)
    for pod in (coordinator, client):
        name = pod["metadata"].pop("name")
        pod["metadata"]["generateName"] = f"{name}-check-"  # a pod of that name may exist (a retried start)
        with refusals_named(f"Pod {name} (a dry run)", FIXES, generated=f"{name}-check-"):
            await api.dry_run_create(core_path("pods", namespace), adopt(pod, owner, labels))


async def create_children(
    api: KubeApi, owner: Mapping[str, Any], job: FederatedTraining, namespace: str, existing: set[str] | None = None
) -> list[str]:
    """Create the training's children that are missing (each adopted: ownerReference and labels).

    Args:
        api: The Kubernetes client.
        owner: The FederatedTraining (apiVersion, kind, metadata with uid).
        job: The validated training.
        namespace: Its namespace.
        existing: Names of pods and Services known to exist (skipped); ``None`` to try them all
            (an existing child is kept as it is).

    Returns:
        The names of the children created (or found on creation).

    Raises:
        ChildRejectedError: when the API server refuses a child for what it is.
    """
    labels = training_labels(job.metadata.name)
    made = []
    for plural, child in children(job, namespace):
        child_name = child["metadata"]["name"]
        if existing is not None and f"{plural}/{child_name}" in existing:
            continue
        with refusals_named(f"{child['kind']} {child_name}", FIXES):
            await api.create(core_path(plural, namespace), adopt(child, owner, labels))
        made.append(f"{plural}/{child_name}")
    return made


async def stop_clients(api: KubeApi, namespace: str, name: str) -> int:
    """Delete the client pods (no client work after the run ends); return how many went."""
    return await delete_labelled(api, namespace, component_labels(name, CLIENT), ("pods",))


async def delete(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger) -> None:
    """Remove every child of the training: coordinator first, so no round asks a vanished client."""
    name = str(body.metadata.name)
    namespace = str(body.metadata.namespace)
    async with scoped_api(memo) as api:
        removed = int(await api.delete(core_path("pods", namespace, coordinator_pod_name(name))))
        removed += await delete_labelled(api, namespace, training_labels(name), ("pods", "services"))
    logger.info("removed %d children of FederatedTraining %s", removed, name)
    admission.forget(INFO, body, memo, logger)
