"""What the operator does when an InferenceService is created, changed, resumed or deleted.

Create/update/resume validate the resource (:mod:`controllers.admission`) and, once accepted,
create or update its children (:mod:`controllers.servingpods`): the CPU replicas' Deployment,
the GPU replicas' Deployment when ``gpu.count > 0``, the router's Deployment, the router's
Service and the replicas' headless Service, each with an ownerReference and the service's
labels. An existing Deployment gets the current pod template (image, model, batching), but the
CPU Deployment's replica count stays the law's. A service without ``spec.image`` is refused
with ``Submitted=False`` (reason ``ImageMissing``) and a Warning Event. Running the control law
is the daemon's job (:mod:`controllers.inferenceservice_loop`). Delete removes every child
explicitly: a cluster's garbage collector would do it through the ownerReferences, but nothing
relies on one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
from collections.abc import Mapping
from typing import Any, cast

import kopf

from controllers import admission
from controllers.kube import (
    AlreadyExistsError,
    KubeApi,
    KubeError,
    adopt,
    core_path,
    delete_labelled,
    group_path,
    merge_patch_to,
    owner_document,
    scoped_api,
)
from controllers.refusals import ChildRejectedError, Fixes, is_quota, pod_of, refusals_named, report_rejection
from controllers.router_client import RouterUnavailableError
from controllers.servingpods import (
    APPLIED_TEMPLATE,
    SERVED_SPEC,
    admin_token_of,
    children,
    cpu_deployment_name,
    gpu_deployment_name,
    router_admin_secret,
    router_admin_secret_name,
    router_deployment_name,
    router_service_name,
    service_labels,
)
from mlscale.api import conditions_of, utcnow
from mlscale.kinds import KINDS
from roma.api import InferenceService

log = logging.getLogger(__name__)

INFO = KINDS["InferenceService"]
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
"""A router admin token as the operator makes them (``secrets.token_urlsafe(32)``: 256 bits)."""
FIXES = Fixes(
    kind="InferenceService",
    templates="spec.template, spec.gpu.template and spec.routerTemplate",
    sizes="spec.cpu.coresMax and spec.memory (each replica starts at coresMax)",
)
"""Where an InferenceService's spec is changed to have a refused pod accepted."""
IMAGE_MISSING = (
    "spec.image is required in a cluster: name an image with the roma engine (TensorFlow) and the "
    "model builder's module, e.g. 'registry.example/mlscale-roma:0.1'"
)


def collection_path(group_version: str, plural: str, namespace: str, name: str | None = None) -> str:
    """Path of a core (``v1``) or grouped (``apps/v1``) namespaced collection or object."""
    if group_version == "v1":
        return core_path(plural, namespace, name)
    return group_path(group_version, plural, namespace, name)


async def reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger) -> None:
    """Validate the service; once accepted, create its children or bring their templates up to date.

    Args:
        body: The InferenceService.
        patch: kopf's patch of it (conditions, phase).
        memo: The operator's shared state.
        logger: The per-object logger.
    """
    status = await admission.current_status(INFO, body, memo)
    model = admission.admit(INFO, body, patch, memo, logger, status=status)
    if model is None:
        return
    svc = cast(InferenceService, model)
    generation = body.metadata.get("generation")
    conditions = conditions_of(patch.status)
    now = utcnow()
    if not svc.spec.image:
        admission.set_submitted(
            body,
            patch,
            conditions,
            submitted=False,
            reason="ImageMissing",
            message=IMAGE_MISSING,
            generation=generation,
            now=now,
        )
        logger.warning("not serving %s: %s", body.metadata.name, IMAGE_MISSING)
        return
    namespace = str(body.metadata.namespace)
    async with scoped_api(memo) as api:
        try:
            await admit_pods(api, owner_document(body), svc, namespace)
            made = await apply_children(
                api, owner_document(body), svc, namespace, served=dict(body.spec), update_templates=True
            )
        except ChildRejectedError as exc:
            cpu = await api.get(group_path("apps/v1", "deployments", namespace, cpu_deployment_name(svc.metadata.name)))
            running = (
                "The replicas and the router keep running as they are, sized by the operator for the spec they "
                "were made from."
                if served_spec(cpu) is not None
                else ""
            )
            message = report_rejection(body, patch, conditions, exc, generation=generation, now=now, after=running)
            logger.warning("not serving %s as specified: %s", body.metadata.name, message)
            return
    name = svc.metadata.name
    gpu = f", {svc.spec.gpu.count} GPU replicas" if svc.spec.gpu.count else ""
    message = (
        f"Deployment {cpu_deployment_name(name)} ({svc.spec.replicas.min} CPU replicas){gpu}, "
        f"the router behind Service {router_service_name(name)} created"
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
    logger.info("serving %s: %s (created now: %s)", name, message, ", ".join(made) or "none")


async def admit_pods(api: KubeApi, owner: Mapping[str, Any], svc: InferenceService, namespace: str) -> None:
    """Have the API server admit one pod of each Deployment in a dry run, before any is created or changed.

    A ReplicaSet whose pods are refused only says so in its conditions, and keeps trying: this
    refuses the spec at once instead.

    A Deployment whose pod template is the one it was last given needs none (its pods exist or
    its ReplicaSet says why not); a full ResourceQuota is no refusal of the spec (it may be the
    service's own replicas that fill it, and it clears as pods end: ``PodsWaiting`` tells).

    Raises:
        ChildRejectedError: when validation, Pod Security admission or a LimitRange refuses one.
    """
    labels = service_labels(svc.metadata.name)
    deployments = group_path("apps/v1", "deployments", namespace)
    applied = {
        d["metadata"]["name"]: ((d["metadata"].get("annotations") or {}).get(APPLIED_TEMPLATE))
        for d in await api.list(deployments, labels)
    }
    for _, plural, child in children(svc):
        name = child["metadata"]["name"]
        if plural != "deployments" or applied.get(name) == child["metadata"]["annotations"][APPLIED_TEMPLATE]:
            continue
        try:
            pod = pod_of(child)
            with refusals_named(f"a pod of Deployment {name} (a dry run)", FIXES, generated=f"{name}-"):
                await api.dry_run_create(core_path("pods", namespace), adopt(pod, owner, labels))
        except KubeError as exc:
            if not is_quota(exc):
                raise


async def apply_children(
    api: KubeApi,
    owner: Mapping[str, Any],
    svc: InferenceService,
    namespace: str,
    *,
    served: Mapping[str, Any],
    update_templates: bool = False,
) -> list[str]:
    """Create the service's missing children; optionally bring existing Deployments' templates up to date.

    Args:
        api: The Kubernetes client.
        owner: The InferenceService (apiVersion, kind, metadata with uid).
        svc: The validated service.
        namespace: Its namespace.
        served: The spec ``svc`` was validated from, as stored: the CPU Deployment keeps it
            (:data:`controllers.servingpods.SERVED_SPEC`) for the loop to serve by.
        update_templates: Patch each existing Deployment's pod template (and the GPU count) to
            the spec's, and delete a GPU Deployment the spec no longer asks for; the CPU
            Deployment's replica count is left to the law.

    Returns:
        ``plural/name`` of each child created.
    """
    name = svc.metadata.name
    labels = service_labels(name)
    existing = {
        f"{plural}/{item['metadata']['name']}": item
        for group_version, plural in (("apps/v1", "deployments"), ("v1", "services"))
        for item in await api.list(collection_path(group_version, plural, namespace), labels)
    }
    made = []
    served_text = json.dumps(served, sort_keys=True, separators=(",", ":"))
    cpu_path = group_path("apps/v1", "deployments", namespace, cpu_deployment_name(name))
    for group_version, plural, child in children(svc):
        child_name = child["metadata"]["name"]
        current = existing.get(f"{plural}/{child_name}")
        if child_name == cpu_deployment_name(name) and current is None:
            child["metadata"]["annotations"][SERVED_SPEC] = served_text
        if current is None:
            if child_name == router_deployment_name(name):
                await router_admin_token(api, owner, name, namespace)  # the router's pod reads it
            with refusals_named(f"{child['kind']} {child_name}", FIXES):
                await api.create(collection_path(group_version, plural, namespace), adopt(child, owner, labels))
            made.append(f"{plural}/{child_name}")
        elif update_templates and plural == "deployments":
            # From the template applied last (its annotation), not the stored one: what the spec
            # no longer asks for goes, what the API server or another controller added stays.
            applied_text = ((current.get("metadata") or {}).get("annotations") or {}).get(APPLIED_TEMPLATE)
            applied = json.loads(applied_text) if applied_text else {}
            spec: dict[str, Any] = {"template": merge_patch_to(applied, child["spec"]["template"])}
            if child_name != cpu_deployment_name(name):
                spec["replicas"] = child["spec"]["replicas"]
            patch = {"metadata": {"annotations": dict(child["metadata"]["annotations"])}, "spec": spec}
            with refusals_named(f"the update of {child['kind']} {child_name}", FIXES):
                await api.patch(collection_path(group_version, plural, namespace, child_name), patch)
    gpu = gpu_deployment_name(name)
    if update_templates and svc.spec.gpu.count == 0 and f"deployments/{gpu}" in existing:
        # A GPU Deployment left from an earlier generation of the spec.
        await api.delete(group_path("apps/v1", "deployments", namespace, gpu))
    cpu = existing.get(f"deployments/{cpu_deployment_name(name)}")
    if update_templates and cpu is not None and served_spec(cpu) != served:
        # Last: the loop serves by this spec once every child has been brought to it.
        await api.patch(cpu_path, {"metadata": {"annotations": {SERVED_SPEC: served_text}}})
    return made


def _usable_token(secret: Mapping[str, Any] | None, owner_uid: str | None) -> str | None:
    """The token of a router admin Secret the operator made for this service (None: not one)."""
    if secret is None:
        return None
    meta = secret.get("metadata") or {}
    owners = {ref.get("uid") for ref in meta.get("ownerReferences") or []}
    token = admin_token_of(secret)
    if owner_uid not in owners or meta.get("deletionTimestamp") or token is None:
        return None
    return token if TOKEN_PATTERN.fullmatch(token) else None


async def router_admin_token(api: KubeApi, owner: Mapping[str, Any], name: str, namespace: str) -> str:
    """The token of the service's router admin API: the one in its Secret, or a new one in a Secret made now.

    Made before the router's Deployment, and looked at again every period by the loop: a Secret
    that was deleted, that a service of the same name left behind (another uid, not yet
    collected), or that holds no token the operator could have written is replaced. The router
    reads the token from the mounted Secret at each admin request, so a replaced one reaches it
    without a restart (in the kubelet's time: until then it answers 401).

    Raises:
        RouterUnavailableError: when the Secret under that name is not one the operator made for
            this service and cannot be replaced now (one being deleted, say): no router is given
            a token that someone else may know.
    """
    uid = owner["metadata"].get("uid")
    path = core_path("secrets", namespace, router_admin_secret_name(name))
    stored = await api.get(path)
    token = _usable_token(stored, uid)
    if token is not None:
        return token
    if stored is not None:
        log.warning(
            "replacing Secret %s/%s: not a router admin token of this service", namespace, stored["metadata"]["name"]
        )
        with contextlib.suppress(AlreadyExistsError):  # replaced meanwhile: what stands now is checked below
            await api.delete(path, uid=stored["metadata"].get("uid"))
    fresh = router_admin_secret(name, secrets.token_urlsafe(32))
    made = await api.create(core_path("secrets", namespace), adopt(fresh, owner, service_labels(name)))
    token = _usable_token(made, uid)
    if token is None:
        raise RouterUnavailableError(
            f"Secret {router_admin_secret_name(name)} is not a router admin token the operator made for this service "
            "and is still there (being deleted?); the router's replicas are not registered until it is gone"
        )
    return token


def served_spec(cpu_deployment: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The spec the create/update handler last applied, from the CPU Deployment (``None``: unknown).

    The CPU Deployment keeps the spec its children were made from (:data:`SERVED_SPEC`). The
    loop serves and sizes the replicas by it, and recreates a vanished child from it: a changed
    spec reaches the loop once the handler has applied it, and one the API server refused
    (``ChildRejected``) never does.
    """
    text = (((cpu_deployment or {}).get("metadata") or {}).get("annotations") or {}).get(SERVED_SPEC)
    try:
        spec = json.loads(text) if text else None
    except ValueError:
        return None
    return spec if isinstance(spec, dict) else None


async def delete(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger) -> None:
    """Remove every child of the service: Deployments, then pods and Services."""
    name = str(body.metadata.name)
    namespace = str(body.metadata.namespace)
    labels = service_labels(name)
    removed = 0
    async with scoped_api(memo) as api:
        # Deployments first: in a cluster their ReplicaSets and pods follow (background deletion);
        # the pods are deleted here too, for an API server without a garbage collector.
        for child in await api.list(group_path("apps/v1", "deployments", namespace), labels):
            removed += int(await api.delete(group_path("apps/v1", "deployments", namespace, child["metadata"]["name"])))
        removed += await delete_labelled(api, namespace, labels, ("pods", "services"))
        removed += int(await api.delete(core_path("secrets", namespace, router_admin_secret_name(name))))
    logger.info("removed %d children of InferenceService %s", removed, name)
    admission.forget(INFO, body, memo, logger)
