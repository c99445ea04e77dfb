"""Helpers to run the real operator (kopf, aiohttp, HTTP) in-process against the kmock Kubernetes emulator.

The emulator serves the built-in resources plus our CRDs, registered from ``crds/``; the
operator reaches it through a kubeconfig file, exactly as it reaches a real cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import aiohttp.web
import attrs
import kmock
import kopf
import kubernetes_validate
import pytest
import yaml

import controllers  # noqa: F401  # registers the handlers in kopf's default registry

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "default"


OPERATOR_TOKEN = "test-token"  # the operator's credentials in the kubeconfig the tests hand it


def _operator_rules() -> list[dict[str, Any]]:
    """The rules of the operator's ClusterRole, as deployed (``operator/rbac.yaml``; the chart renders the same)."""
    for doc in yaml.safe_load_all((ROOT / "operator" / "rbac.yaml").read_text()):
        if doc and doc.get("kind") == "ClusterRole":
            return list(doc["rules"])
    raise AssertionError("operator/rbac.yaml has no ClusterRole")


OPERATOR_RULES = _operator_rules()


def _target(request: Any) -> tuple[str, str, str | None] | None:
    """(API group, resource with its subresource, object name) of a request (None: discovery, non-resource)."""
    if request.resource is None or request.resource.group is None:
        return None
    group = request.resource.group or ""
    plural = getattr(request.resource, "plural", None)
    if not plural:
        # kmock reads /api/v1/namespaces/NAME as a namespace without a resource.
        return (group, "namespaces", request.namespace) if request.namespace and group == "" else None
    return group, f"{plural}/{request.subresource}" if request.subresource else plural, request.name


def rbac_verb(request: Any) -> str | None:
    """The RBAC verb of a request to a resource (None for discovery and non-resource paths)."""
    target = _target(request)
    if target is None:
        return None
    name = target[2]
    method = str(getattr(request.method, "value", request.method)).upper()  # kmock gives an enum
    if method == "GET":
        return "watch" if request.params.get("watch") == "true" else ("get" if name else "list")
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return {"POST": "create", "PATCH": "patch", "PUT": "update"}.get(method)


def forbidden(request: Any, rules: list[dict[str, Any]] = OPERATOR_RULES) -> str | None:
    """The API server's refusal of an operator request its ClusterRole does not grant (None if granted)."""
    verb, target = rbac_verb(request), _target(request)
    if verb is None or target is None:
        return None
    group, resource, name = target
    for rule in rules:
        if group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]:
            return None
    where = f' in the namespace "{request.namespace}"' if request.namespace else " at the cluster scope"
    return (
        f'{resource}{"." + group if group else ""} "{name or ""}" is forbidden: User '
        f'"system:serviceaccount:mlscale-system:mlscale-operator" cannot {verb} resource "{resource}" in API group '
        f'"{group}"{where}'
    )


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator plus ``metadata.generateName`` on create, which kopf uses for Events.

    A create with ``dryRun=All`` answers the object without storing it, as an API server does
    (409 when one of that name exists; subclasses that refuse objects refuse dry runs alike).

    Requests made with the operator's token are authorised against the operator's ClusterRole,
    as a cluster's API server does: one it does not grant is answered 403 and kept in
    ``forbidden`` (the operator retries a failed handler, so a test could otherwise pass on a
    request that can never succeed). The tests' own requests carry no token and are not checked.
    """

    forbidden: ClassVar[list[str]] = []

    async def _handle(self, request: Any) -> Any:
        """Authorise the request, then :meth:`serve` it (subclasses change what they serve there)."""
        if request.headers.get("Authorization") == f"Bearer {OPERATOR_TOKEN}" and (refusal := forbidden(request)):
            Emulator.forbidden.append(f"{rbac_verb(request)} {request.url.path}: {refusal}")
            status = {"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403}
            return aiohttp.web.json_response({**status, "message": refusal}, status=403)
        return await self.serve(request)

    async def serve(self, request: Any) -> Any:
        """Answer an authorised request (subclasses refuse or record some, then call this)."""
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:8]}"
            if request.params.get("dryRun") == "All":
                if self._exists(request, meta):
                    status = {"kind": "Status", "status": "Failure", "reason": "AlreadyExists", "code": 409}
                    return aiohttp.web.json_response({**status, "message": f"{meta['name']!r} exists"}, status=409)
                return aiohttp.web.json_response(request.data, status=201)
        return await super()._handle(request)

    def _exists(self, request: Any, meta: dict[str, Any]) -> bool:
        """Whether an object of that resource, namespace and name is stored (a dry run clashes with it too)."""
        namespace = request.namespace or meta.get("namespace")
        plural = getattr(request.resource, "plural", None)
        return any(
            name == meta.get("name")
            and ns == namespace
            and getattr(resource, "plural", None) == plural
            and not obj.deleted
            for (resource, ns, name), obj in self._objects.items()
        )


@attrs.frozen
class InvalidError(kmock.KubernetesError):
    """What an API server answers for a pod it cannot accept."""

    status: int = 422
    reason: str = "Invalid"
    message: str = 'Pod "pagerank-driver" is invalid: spec.tolerations[0].operator: Unsupported value: "Sometimes"'


@attrs.frozen
class PodSecurityError(kmock.KubernetesError):
    """What Pod Security admission answers for a pod below the namespace's enforced level."""

    status: int = 403
    reason: str = "Forbidden"
    message: str = (
        'pods "pagerank-exec-check-1" is forbidden: violates PodSecurity "restricted:latest": '
        'runAsNonRoot != true (pod or container "executor" must set securityContext.runAsNonRoot=true)'
    )


@attrs.frozen
class QuotaError(kmock.KubernetesError):
    """What ResourceQuota admission answers when a pod would pass the namespace's quota."""

    status: int = 403
    reason: str = "Forbidden"
    message: str = (
        'pods "cnn-cpu-7c9d5-x2m4q" is forbidden: exceeded quota: compute, requested: requests.cpu=2, '
        "used: requests.cpu=7, limited: requests.cpu=8"
    )


@attrs.frozen
class StrictDecodingError(kmock.KubernetesError):
    """What an API server answers to ``fieldValidation=Strict`` for a field the kind does not have."""

    status: int = 400
    reason: str = "BadRequest"


def unknown_field(obj: dict[str, Any]) -> str | None:
    """The first field of ``obj`` its kind does not have (``spec.nodeSelecter``), as the API server names it."""
    try:
        kubernetes_validate.validate(obj, "1.33", strict=True)
    except kubernetes_validate.ValidationError as exc:
        if exc.validator != "additionalProperties":
            return None
        found = re.search(r"'([^']+)' was unexpected", exc.message)
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in exc.path).lstrip(".")
        return f"{path}.{found[1]}" if found else path
    return None


class ValidatingEmulator(Emulator):
    """Refuses a pod with a toleration operator other than Exists or Equal, as an API server does.

    With ``restricted`` set, refuses pods that do not run as non-root, as a namespace labelled
    ``pod-security.kubernetes.io/enforce: restricted`` does. With ``quota_full`` set, refuses
    every pod as a namespace's full ResourceQuota does.
    """

    pod_refusals = 0
    restricted = False
    quota_full = False
    dry_runs: ClassVar[list[dict[str, Any]]] = []

    async def serve(self, request: Any) -> Any:
        if request.action == kmock.action.CREATE and request.url.path.endswith("/pods"):
            if request.params.get("dryRun") == "All":
                type(self).dry_runs.append(copy.deepcopy(request.data))
            if request.params.get("fieldValidation") == "Strict" and (field := unknown_field(request.data)):
                type(self).pod_refusals += 1
                raise StrictDecodingError(message=f'strict decoding error: unknown field "{field}"')
            spec = request.data.get("spec") or {}
            tolerations = spec.get("tolerations") or []
            if any(t.get("operator") not in (None, "Exists", "Equal") for t in tolerations):
                type(self).pod_refusals += 1
                raise InvalidError()
            if type(self).restricted and not (spec.get("securityContext") or {}).get("runAsNonRoot"):
                type(self).pod_refusals += 1
                raise PodSecurityError()
            if type(self).quota_full:
                type(self).pod_refusals += 1
                raise QuotaError()
        return await super().serve(request)


async def validating_emulator(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[kmock.KubernetesEmulator]:
    """A fresh :class:`ValidatingEmulator`, handlers retried 0.2 s after a failure (use as a fixture body)."""
    monkeypatch.setenv("MLSCALE_RETRY_BASE_SECONDS", "0.2")
    ValidatingEmulator.pod_refusals = 0
    ValidatingEmulator.restricted = False
    ValidatingEmulator.quota_full = False
    ValidatingEmulator.dry_runs = []
    async with ValidatingEmulator() as handler, kmock.Server(handler):
        handler.resources.load_bundled()
        register_crds(handler)
        yield handler


def register_crds(emulator: kmock.KubernetesEmulator) -> None:
    """Declare each CRD of ``crds/`` to the emulator (it does not register POSTed CRDs)."""
    for path in sorted((ROOT / "crds").glob("mlscale.dev_*.yaml")):
        crd = yaml.safe_load(path.read_text())
        spec = crd["spec"]
        for version in spec["versions"]:
            key = f"{spec['group']}/{version['name']}/{spec['names']['plural']}"
            emulator.resources[key] = kmock.ResourceInfo(
                kind=spec["names"]["kind"],
                singular=spec["names"]["singular"],
                namespaced=spec["scope"] == "Namespaced",
                verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
                shortnames=set(spec["names"].get("shortNames", [])),
                categories=set(spec["names"].get("categories", [])),
                subresources=set(version.get("subresources", {})),
            )


class Cluster:
    """Test-side view of the emulated cluster: create, patch, read and delete objects."""

    def __init__(self, emulator: kmock.KubernetesEmulator, http: aiohttp.ClientSession) -> None:
        # A session of our own: the emulator's bundled client stalls once an operator's watches go away.
        self.emulator = emulator
        self.http = http
        self.base = str(emulator.url).rstrip("/")

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST an object, filling the fields a real API server assigns and the emulator does not."""
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("resourceVersion", "1")
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        async with self.http.post(self.base + path, json=body) as response:
            assert response.status < 300, await response.text()
            result: dict[str, Any] = await response.json()
            return result

    async def get(self, path: str) -> dict[str, Any] | None:
        async with self.http.get(self.base + path) as response:
            if response.status == 404:
                return None
            assert response.status < 300, await response.text()
            result: dict[str, Any] = await response.json()
            return result

    async def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/merge-patch+json"}
        async with self.http.patch(self.base + path, json=body, headers=headers) as response:
            assert response.status < 300, await response.text()
            result: dict[str, Any] = await response.json()
            return result

    async def delete(self, path: str) -> None:
        async with self.http.delete(self.base + path) as response:
            assert response.status < 300, await response.text()

    async def wait_for(
        self, path: str, predicate: Callable[[dict[str, Any] | None], bool], timeout_s: float = 10.0
    ) -> dict[str, Any] | None:
        """Poll the stored object until ``predicate`` holds; fail with the last state after ``timeout_s``."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        obj = await self.get(path)
        while not predicate(obj):
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"timed out waiting on {path}; last state: {obj}")
            await asyncio.sleep(0.05)
            obj = await self.get(path)
        return obj

    def events(self, name: str) -> list[dict[str, Any]]:
        """Events stored for the object named ``name`` (core v1 and events.k8s.io)."""
        found = []
        for key, obj in self.emulator.objects.items():
            resource = key[0]
            if getattr(resource, "plural", None) != "events":
                continue
            raw = obj.raw
            involved = raw.get("involvedObject") or raw.get("regarding") or {}
            if involved.get("name") == name:
                found.append(raw)
        return found

    async def wait_for_events(self, name: str, reason: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """The Events with that reason about ``name`` once there is one (kopf posts them in the background)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not (found := [e for e in self.events(name) if e.get("reason") == reason]):
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"no {reason} Event about {name} in {timeout_s} s")
            await asyncio.sleep(0.05)
        return found


class RunningOperator:
    """An operator started by :func:`start_operator`."""

    def __init__(self, task: asyncio.Task[None], stop: asyncio.Event, memo: kopf.Memo) -> None:
        self.task = task
        self.stop_flag = stop
        self.memo = memo

    async def stop(self) -> None:
        self.stop_flag.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, timeout=15)


async def start_operator() -> RunningOperator:
    """Start the operator as it runs in a cluster (all namespaces) and wait until it is ready."""
    stop = asyncio.Event()
    ready = threading.Event()
    memo = kopf.Memo()
    task = asyncio.create_task(
        kopf.operator(clusterwide=True, stop_flag=stop, ready_flag=ready, memo=memo, standalone=True)
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while not ready.is_set() or "health_port" not in memo:
        if task.done():
            task.result()
        if loop.time() > deadline:
            pytest.fail("the operator did not become ready in 15 s")
        await asyncio.sleep(0.02)
    return RunningOperator(task, stop, memo)
