"""What the operator does when a FederatedTraining is created, changed, resumed or deleted.

Create/update/resume validate the resource (:mod:`controllers.admission`) and, the first time an
accepted training can run, create its children (:mod:`controllers.flpods`): the clients' headless
Service, the coordinator's Service, one pod per client and the coordinator pod, each with an
ownerReference and the training's labels. A training without ``spec.image`` is refused with
``Submitted=False`` (reason ``ImageMissing``) and a Warning Event. Following the rounds is the
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
from hyperfl.api import FederatedTraining
from mlscale.api import SUBMITTED, conditions_of, find_condition, utcnow
from mlscale.kinds import KINDS

INFO = KINDS["FederatedTraining"]


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
    async with scoped_api(memo) as api:
        await create_children(api, owner_document(body), job, namespace)
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
    """
    labels = training_labels(job.metadata.name)
    made = []
    for plural, child in children(job, namespace):
        child_name = child["metadata"]["name"]
        if existing is not None and f"{plural}/{child_name}" in existing:
            continue
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
