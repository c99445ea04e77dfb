"""What the operator does when a DeadlineJob is created, changed, resumed or deleted.

Create/update/resume validate the job (:mod:`controllers.admission`) and, the first time an
accepted job can run, create its children and record its start: the driver's ServiceAccount,
Role and RoleBinding, the executor pod template (ConfigMap), the driver's headless Service and
the driver pod. The control loop itself is the daemon in :mod:`controllers.deadlinejob_loop`.
Delete stops the application and removes every child, executors included: a cluster's garbage
collector would do it through the ownerReferences, but nothing must depend on one being there.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import cast

import kopf

from controllers import admission
from controllers.kube import (
    KubeApi,
    adopt,
    core_path,
    delete_labelled,
    group_path,
    merge_patch_to,
    scoped_api,
)
from controllers.refusals import ChildRejectedError, Fixes, refusals_named, report_rejection
from controllers.sparkpods import (
    creates_account,
    driver_pod,
    driver_pod_name,
    driver_service,
    executor_pod_check,
    job_labels,
    spark_account_name,
    spark_role,
    spark_role_binding,
    spark_service_account,
    template_configmap,
    template_configmap_name,
)
from controllers.stage_profiles import profile_configmap_name
from dynaspark.api import DeadlineJob
from mlscale.api import conditions_of, rfc3339, utcnow
from mlscale.kinds import KINDS

log = logging.getLogger(__name__)

INFO = KINDS["DeadlineJob"]
TERMINAL_PHASES = frozenset({"Succeeded", "DeadlineMissed", "Failed"})
RBAC = "rbac.authorization.k8s.io/v1"

# Fields of existing children that follow the spec until the job starts (a refused child is
# fixed by changing the spec; the children created before it must not keep the old one).
FOLLOWED_FIELDS = {"ConfigMap": "data", "RoleBinding": "subjects"}


FIXES = Fixes(
    kind="DeadlineJob",
    templates="spec.driver.template and spec.executors.template",
    sizes="spec.executors.coresMax and spec.executors.memory (Spark adds its memory overhead) or "
    "spec.driver.cores and spec.driver.memory",
)
"""Where a DeadlineJob's spec is changed to have a refused pod accepted."""


async def reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger) -> None:
    """Validate the job; the first time it can run, create its children and record its start.

    Args:
        body: The DeadlineJob.
        patch: kopf's patch of it (conditions, phase, start).
        memo: The operator's shared state.
        logger: The per-object logger.
    """
    status = await admission.current_status(INFO, body, memo)
    model = admission.admit(INFO, body, patch, memo, logger, status=status)
    if model is None or status.get("phase") in TERMINAL_PHASES:
        return
    job = cast(DeadlineJob, model)
    generation = body.metadata.get("generation")
    conditions = conditions_of(patch.status)
    now = utcnow()
    if not job.spec.application.image:
        message = (
            "spec.application.image is required in a cluster: name the image with Spark and the "
            "application, e.g. 'registry.example/pagerank:1.0'"
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
        log.warning("not submitting %s/%s: %s", body.metadata.namespace, body.metadata.name, message)
        return
    if status.get("startTime"):
        return  # the children exist: the daemon watches them from here on
    namespace = str(body.metadata.namespace)
    try:
        async with scoped_api(memo) as api:
            await create_children(api, body, job, namespace)
    except ChildRejectedError as exc:
        message = report_rejection(body, patch, conditions, exc, generation=generation, now=now)
        log.warning("not submitting %s/%s: %s", namespace, body.metadata.name, message)
        return
    name = job.metadata.name
    message = (
        f"driver pod {driver_pod_name(name)}, Service {name}-driver and executor template "
        f"{template_configmap_name(name)} created"
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
    patch.status["startTime"] = rfc3339(now)
    patch.status["deadlineTime"] = rfc3339(now + dt.timedelta(seconds=job.spec.deadline))
    patch.status["driverPod"] = driver_pod_name(name)
    patch.status["profile"] = profile_configmap_name(job)
    log.info("submitted %s/%s: %s", body.metadata.namespace, name, message)


async def create_children(api: KubeApi, owner: kopf.Body, job: DeadlineJob, namespace: str) -> None:
    """Create the job's children (each adopted: ownerReference and labels).

    Existing ones are kept, but for the fields in :data:`FOLLOWED_FIELDS`, brought to the spec's.
    First the API server admits an executor pod in a dry run (:func:`executor_pod_check`).

    Raises:
        ChildRejectedError: when the API server refuses a child as invalid, or Pod Security admission a pod.
    """
    owner_doc = {
        "apiVersion": owner.get("apiVersion"),
        "kind": owner.get("kind"),
        "metadata": dict(owner.metadata),
    }
    labels = job_labels(job.metadata.name)
    children = [
        (group_path(RBAC, "roles", namespace), spark_role(job)),
        (group_path(RBAC, "rolebindings", namespace), spark_role_binding(job, namespace)),
        (core_path("configmaps", namespace), template_configmap(job)),
        (core_path("services", namespace), driver_service(job)),
        (core_path("pods", namespace), driver_pod(job, namespace)),
    ]
    if creates_account(job):
        children.insert(0, (core_path("serviceaccounts", namespace), spark_service_account(job)))
    # Spark creates the executors once the driver runs: have the API server admit one first, so a
    # template or namespace policy that refuses them stops the job before its deadline runs.
    with refusals_named(
        "executor pod (a dry run of the pod Spark will ask for)", FIXES, generated=f"{job.metadata.name}-exec-check-"
    ):
        await api.dry_run_create(core_path("pods", namespace), executor_pod_check(job))
    for path, child in children:
        name = child["metadata"]["name"]
        with refusals_named(f"{child['kind']} {name}", FIXES):
            existing = await api.create(path, adopt(child, owner_doc, labels))
        field = FOLLOWED_FIELDS.get(child["kind"])
        if field is not None and existing.get(field) != child[field]:
            await api.patch(f"{path}/{name}", {field: merge_patch_to(existing.get(field), child[field])})


async def delete(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger) -> None:
    """Stop the application and remove the job's children (the stage profile stays for later runs)."""
    name = str(body.metadata.name)
    namespace = str(body.metadata.namespace)
    async with scoped_api(memo) as api:
        # The driver first: once it is gone no new executor is asked for.
        removed = int(await api.delete(core_path("pods", namespace, driver_pod_name(name))))
        removed += await delete_labelled(
            api, namespace, job_labels(name), ("pods", "services", "configmaps", "serviceaccounts")
        )
        for plural in ("rolebindings", "roles"):
            removed += int(await api.delete(group_path(RBAC, plural, namespace, spark_account_name(name))))
    log.info("removed %d children of DeadlineJob %s/%s", removed, namespace, name)
    admission.forget(INFO, body, memo, logger)
