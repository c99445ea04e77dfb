"""The Kubernetes adapters: the only code that speaks to the API server besides kopf itself.

A small async REST client built from the same credentials kopf logged in with, and the
operations the controllers need: children with ownerReferences, status patches, in-place
pod resize (``pods/{name}/resize``, Kubernetes ≥ 1.33), Deployment scaling, cleanup.
HTTP errors become the project's own exceptions here and nowhere else.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as dt
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import kopf

from mlscale.units import QuantityError, format_cpu, parse_cpu

MANAGED_BY = {"app.kubernetes.io/managed-by": "mlscale"}
COMPONENT_LABEL = "app.kubernetes.io/component"
"""What a child is to its resource (``driver``, ``cpu-replica``, ``client``, ...)."""
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


class KubeError(RuntimeError):
    """The API server refused a request."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        """Keep the HTTP status, the API's reason and its message."""
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFoundError(KubeError):
    """404: the object (or the endpoint) does not exist."""


class AlreadyExistsError(KubeError):
    """409: the object exists already."""


class ResizeUnsupportedError(KubeError):
    """The cluster refuses in-place pod resize (older than 1.33, or the feature is off)."""


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if not info.server.startswith("https"):
        return False
    if info.insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    cadata = info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data
    if cadata and "BEGIN CERTIFICATE" not in cadata:
        cadata = base64.b64decode(cadata).decode()
    ctx = ssl.create_default_context(cafile=str(info.ca_path) if info.ca_path else None, cadata=cadata or None)
    # A client certificate given as data is written where OpenSSL can read it, loaded, and the
    # files removed at once: a client is made per handler call, and the operator's /tmp is small.
    with tempfile.TemporaryDirectory(prefix="mlscale-tls-") as tmp:
        cert = info.certificate_path
        key = info.private_key_path
        if info.certificate_data and not cert:
            cert = Path(tmp) / "tls.crt"
            cert.write_bytes(_pem(info.certificate_data))
        if info.private_key_data and not key:
            key = Path(tmp) / "tls.key"
            key.write_bytes(_pem(info.private_key_data))
        if cert:
            ctx.load_cert_chain(str(cert), str(key) if key else None)
    return ctx


def _pem(data: str | bytes) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return raw if b"BEGIN" in raw else base64.b64decode(raw)


class KubeApi:
    """A minimal async client of the Kubernetes REST API."""

    def __init__(self, info: kopf.ConnectionInfo) -> None:
        """Build the client from kopf's connection info (server, token or certificates)."""
        self.server = info.server.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "mlscale-operator"}
        if info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        auth = aiohttp.BasicAuth(info.username, info.password or "") if info.username else None
        self._session = aiohttp.ClientSession(
            headers=headers,
            auth=auth,
            connector=aiohttp.TCPConnector(ssl=_ssl_context(info), force_close=True),
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._session.close()

    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> dict[str, Any]:
        """Send one request and return the JSON answer.

        Raises:
            NotFoundError: on 404.
            AlreadyExistsError: on 409.
            KubeError: on any other status of 400 and above.
        """
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["json"] = body
            kwargs["headers"] = {"Content-Type": content_type}
        async with self._session.request(method, self.server + path, **kwargs) as response:
            text = await response.text()
            payload: dict[str, Any] = {}
            if text:
                try:
                    payload = await response.json(content_type=None)
                except ValueError:
                    payload = {"message": text}
            if response.status >= 400:
                reason = str(payload.get("reason", response.reason or ""))
                message = str(payload.get("message", text))[:500]
                error = {404: NotFoundError, 409: AlreadyExistsError}.get(response.status, KubeError)
                raise error(response.status, reason, message)
            return payload

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object at ``path``, or ``None`` when it does not exist."""
        try:
            return await self.request("GET", path)
        except NotFoundError:
            return None

    async def list(self, path: str, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """The objects of a collection that carry every label of ``labels``."""
        selector = ",".join(f"{k}={v}" for k, v in (labels or {}).items())
        query = f"?labelSelector={selector}" if selector else ""
        items = (await self.request("GET", path + query)).get("items", [])
        # Filter here too: a selector the server ignores must not widen the result.
        return [
            i
            for i in items
            if all((i.get("metadata", {}).get("labels") or {}).get(k) == v for k, v in (labels or {}).items())
        ]

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create an object; return the existing one when it is already there."""
        try:
            return await self.request("POST", path, body)
        except AlreadyExistsError:
            name = body.get("metadata", {}).get("name", "")
            existing = await self.get(f"{path}/{name}")
            if existing is None:
                raise
            return existing

    async def dry_run_create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Have the API server validate and admit an object without storing it (``dryRun=All``).

        Strictly (``fieldValidation=Strict``): a field the object's kind does not have, such as a
        misspelt one in a user's pod template, is refused (400) instead of dropped with a warning.
        """
        return await self.request("POST", f"{path}?dryRun=All&fieldValidation=Strict", body)

    async def patch(self, path: str, body: dict[str, Any], content_type: str = MERGE) -> dict[str, Any]:
        """Patch an object (merge patch by default)."""
        return await self.request("PATCH", path, body, content_type)

    async def delete(self, path: str, *, uid: str | None = None) -> bool:
        """Delete an object; ``False`` when it was already gone.

        With ``uid``, only that object (a precondition): one made again under the name meanwhile
        stays, and the API server answers 409 (:class:`AlreadyExistsError`).
        """
        body = None if uid is None else {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        try:
            await self.request("DELETE", path, body)
        except NotFoundError:
            return False
        return True


def core_path(plural: str, namespace: str, name: str | None = None, sub: str | None = None) -> str:
    """Path of a core/v1 namespaced resource."""
    path = f"/api/v1/namespaces/{namespace}/{plural}"
    return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def group_path(group_version: str, plural: str, namespace: str, name: str | None = None, sub: str | None = None) -> str:
    """Path of a namespaced resource of an API group (``apps/v1``, ``mlscale.dev/v1alpha1``)."""
    path = f"/apis/{group_version}/namespaces/{namespace}/{plural}"
    return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """An ownerReference to ``owner`` (a kopf body): its children go when it goes."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owner_document(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a resource its children's ownerReferences need (from a kopf body or a fetched object)."""
    return {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "metadata": dict(body["metadata"])}


def child_labels(kind: str, name: str, component: str) -> dict[str, str]:
    """Labels every child of a resource carries."""
    return {
        **MANAGED_BY,
        "app.kubernetes.io/part-of": "mlscale",
        COMPONENT_LABEL: component,
        f"mlscale.dev/{kind.lower()}": name,
    }


def adopt(child: dict[str, Any], owner: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    """A copy of ``child`` in the owner's namespace, with the owner's reference and the labels."""
    child = copy.deepcopy(child)
    meta = child.setdefault("metadata", {})
    meta["namespace"] = owner["metadata"]["namespace"]
    meta.setdefault("labels", {}).update(labels)
    meta["ownerReferences"] = [owner_reference(owner)]
    return child


async def patch_status(
    api: KubeApi, path: str, status: dict[str, Any], *, read: Sequence[Mapping[str, Any]] | None = None
) -> None:
    """Merge ``status`` into a custom resource's status subresource (``path`` is the object's path).

    A merge patch replaces the whole conditions list. A loop that made ``status['conditions']``
    from the conditions it read at the start of its period passes them as ``read``: then only
    the conditions it changed are written, over the list stored now (read again), so one that a
    handler set meanwhile (``Submitted`` after a refused change, say) is not put back as it was.
    Unchanged conditions are left out of the patch.
    """
    if read is not None and "conditions" in status:
        status = dict(status)
        changed = changed_conditions(read, status.pop("conditions"))
        if changed:
            stored = ((await api.get(path) or {}).get("status") or {}).get("conditions") or []
            status["conditions"] = with_conditions(stored, changed)
    if status:
        await api.patch(f"{path}/status", {"status": status})


def changed_conditions(read: Sequence[Mapping[str, Any]], wanted: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The conditions in ``wanted`` that differ from (or are not in) ``read``."""
    before = {c.get("type"): dict(c) for c in read}
    return [dict(c) for c in wanted if before.get(c.get("type")) != dict(c)]


def with_conditions(stored: Sequence[Mapping[str, Any]], changed: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``stored`` with each condition of ``changed`` put in place of the one of its type (or added)."""
    by_type = {c.get("type"): dict(c) for c in changed}
    merged = [by_type.pop(c.get("type"), dict(c)) for c in stored]
    return merged + list(by_type.values())


def api_from_memo(memo: kopf.Memo) -> KubeApi:
    """The operator's shared client, built on first use from the credentials kopf logged in with."""
    api: KubeApi | None = memo.get("kube_api")
    if api is None:
        info: kopf.ConnectionInfo | None = memo.get("connection")
        if info is None:
            raise RuntimeError("the operator has not logged in to the API server yet")
        api = KubeApi(info)
        memo["kube_api"] = api
    return api


async def resize_pod_cpu(api: KubeApi, namespace: str, pod: str, container: str, cores: float) -> None:
    """Resize one container's CPU in place (request = limit = ``cores``).

    Raises:
        ResizeUnsupportedError: when the cluster has no ``pods/resize`` or refuses it.
        NotFoundError: when the pod is gone.
    """
    quantity = format_cpu(cores)
    body = {
        "spec": {
            "containers": [
                {"name": container, "resources": {"requests": {"cpu": quantity}, "limits": {"cpu": quantity}}}
            ]
        }
    }
    try:
        await api.patch(core_path("pods", namespace, pod, "resize"), body, STRATEGIC)
    except NotFoundError as exc:
        if await api.get(core_path("pods", namespace, pod)) is not None:
            raise ResizeUnsupportedError(
                exc.status, "ResizeUnsupported", "the cluster has no pods/resize subresource (Kubernetes < 1.33)"
            ) from exc
        raise
    except KubeError as exc:
        if exc.status in (400, 405, 415, 422) or (exc.status == 403 and "resize" in exc.message):
            raise ResizeUnsupportedError(exc.status, "ResizeUnsupported", exc.message) from exc
        raise


async def scale_deployment(api: KubeApi, namespace: str, name: str, replicas: int) -> None:
    """Set a Deployment's replica count through its ``scale`` subresource."""
    await api.patch(group_path("apps/v1", "deployments", namespace, name, "scale"), {"spec": {"replicas": replicas}})


async def delete_labelled(api: KubeApi, namespace: str, labels: Mapping[str, str], plurals: tuple[str, ...]) -> int:
    """Delete every core/v1 object of those plurals carrying the labels; return how many went."""
    count = 0
    for plural in plurals:
        for item in await api.list(core_path(plural, namespace), labels):
            count += int(await api.delete(core_path(plural, namespace, item["metadata"]["name"])))
    return count


async def node_allocatable_cpu(api: KubeApi, node: str) -> float | None:
    """Cores a node can give to pods (``status.allocatable.cpu``), ``None`` when it cannot be read."""
    try:
        obj = await api.get(f"/api/v1/nodes/{node}")
    except KubeError:
        return None
    cpu = ((obj or {}).get("status") or {}).get("allocatable", {}).get("cpu")
    return None if cpu is None else parse_cpu(cpu)


async def list_pods_on_node(api: KubeApi, node: str) -> list[dict[str, Any]]:
    """Every pod scheduled on ``node``, in all namespaces (a field selector, checked here too)."""
    items = (await api.request("GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}")).get("items", [])
    return [i for i in items if (i.get("spec") or {}).get("nodeName") == node]


@contextlib.asynccontextmanager
async def scoped_api(memo: kopf.Memo) -> AsyncIterator[KubeApi]:
    """A client for one handler call or one daemon's life, closed when it ends.

    kopf hands each resource's handlers a shallow copy of the operator's memo, so a client
    cached there by :func:`api_from_memo` from a resource handler is invisible to the
    operator's cleanup; resource handlers use this instead.
    """
    info: kopf.ConnectionInfo | None = memo.get("connection")
    if info is None:
        raise RuntimeError("the operator has not logged in to the API server yet")
    api = KubeApi(info)
    try:
        yield api
    finally:
        await api.close()


def container_cpu(container: Mapping[str, Any]) -> float | None:
    """A container's CPU request (its limit when it has no request), in cores."""
    resources = container.get("resources") or {}
    cpu = (resources.get("requests") or {}).get("cpu") or (resources.get("limits") or {}).get("cpu")
    if cpu is None:
        return None
    try:
        return parse_cpu(cpu)
    except QuantityError:
        return None


def pod_cpu(pod: Mapping[str, Any], *, besides: str | None = None) -> float:
    """CPU requested by a pod's containers and native sidecars, in cores.

    Args:
        pod: The pod.
        besides: A container to leave out (the one whose CPU the caller decides).
    """
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    containers = [
        c for c in [*(spec.get("containers") or []), *sidecars] if besides is None or c.get("name") != besides
    ]
    return sum(container_cpu(c) or 0.0 for c in containers)


def is_live(pod: Mapping[str, Any]) -> bool:
    """Whether the pod runs or will run (not ended, not being deleted)."""
    meta = pod.get("metadata") or {}
    return not meta.get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


POD_PROBLEMS = frozenset(
    {
        "ErrImagePull",
        "ErrImageNeverPull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "CrashLoopBackOff",
    }
)
"""Reasons a container waits that do not clear by themselves (the kubelet's ``state.waiting.reason``)."""


LAST_MESSAGE_CHARS = 300
"""How much of a crashed container's termination message (its end) a reason quotes."""


def pod_problem(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """Why a pod that has not ended cannot run: ``(reason, message)``, or ``None`` when nothing holds it.

    Unschedulable (the scheduler's message names what no node has), or a container waiting for a
    reason in :data:`POD_PROBLEMS` (an image that cannot be pulled, a missing Secret or
    ConfigMap, a crashing init container). A container that failed and was restarted, and runs
    again but is not ready yet, is still held up (``CrashLoopBackOff``) for :data:`CRASH_RECENT_S`
    after the crash: between its crashes the kubelet shows it running, and a model server that
    loads for a while before it crashes again would otherwise be announced as running, then held,
    every cycle (a crash long ago says nothing of a container not ready now). A pod still being
    created is not held up.
    """
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            return "Unschedulable", str(condition.get("message") or "no node can run it")
    # Once the pod runs, an init container still listed is a native sidecar: it holds nothing up.
    init = [] if status.get("phase") == "Running" else status.get("initContainerStatuses") or []
    for container in [*init, *(status.get("containerStatuses") or [])]:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        last = (container.get("lastState") or {}).get("terminated") or {}
        if reason in POD_PROBLEMS:
            detail = str(waiting.get("message") or "no message")
            if reason in CRASHES and last:  # how its last run ended says why
                detail += f"; {_last_run(last)}"
            return str(reason), f"container {container.get('name')}: {detail}"
        crashed = last.get("exitCode") not in (None, 0) and int(container.get("restartCount") or 0) > 0
        running = (container.get("state") or {}).get("running") is not None
        finished_s = time_s(last.get("finishedAt"))
        recent = finished_s is not None and time.time() - finished_s <= CRASH_RECENT_S
        if crashed and running and not container.get("ready") and recent:
            restarts = int(container.get("restartCount") or 0)
            detail = f"restarted {restarts} time{'s' if restarts > 1 else ''}, not ready; {_last_run(last)}"
            return "CrashLoopBackOff", f"container {container.get('name')}: {detail}"
    return None


CRASH_RECENT_S = 600.0
"""How long after a crash a restarted container that is not ready counts as crashing: the
kubelet's back-off between restarts reaches 5 minutes, and a server may load a while after."""


def time_s(text: Any) -> float | None:
    """A Kubernetes time (RFC 3339) in epoch seconds; ``None`` when absent or unreadable."""
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


CRASHES = frozenset({"CrashLoopBackOff", "RunContainerError"})
"""Waiting reasons of a container that ran and ended: how its last run ended is quoted."""


def _last_run(terminated: Mapping[str, Any]) -> str:
    said = " ".join(str(terminated.get("message") or "").split())[-LAST_MESSAGE_CHARS:]
    ended = f"exit code {terminated.get('exitCode')} ({terminated.get('reason') or 'no reason'})"
    return f"last ended with {ended}" + (f": {said}" if said else "")


EVENT_PROBLEMS = frozenset({"FailedMount", "FailedAttachVolume", "FailedCreatePodSandBox"})
"""Reasons of the kubelet's Warning Events for a pod whose containers cannot be created: only
Events tell them (the pod itself only says ``ContainerCreating``)."""


def is_being_created(pod: Mapping[str, Any]) -> bool:
    """Whether a scheduled pod's containers are still being created (where a failed mount leaves them)."""
    status = pod.get("status") or {}
    containers = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    return any(
        ((c.get("state") or {}).get("waiting") or {}).get("reason") in ("ContainerCreating", "PodInitializing")
        for c in containers
    )


EVENT_REPEATS = 2
"""Times a failure Event must have been seen to count: one alone is often the kubelet's
transient (a service-account volume mounted before its ConfigMap is registered, say); a
missing Secret or claim repeats within seconds as the kubelet retries."""


def event_count(event: Mapping[str, Any]) -> int:
    """How many times an Event was seen (``series.count`` or ``count``; 1 when neither says)."""
    counts = [(event.get("series") or {}).get("count"), event.get("count")]
    return max([int(c) for c in counts if isinstance(c, int)] or [1])


EVENT_RECENT_S = 180.0
"""Events older than this say nothing of a pod now: a mount that failed once, then worked."""


def event_time_s(event: Mapping[str, Any]) -> float | None:
    """When an Event was last seen (epoch seconds), whichever API wrote it.

    core/v1 writers set ``lastTimestamp``; events.k8s.io/v1 writers set ``eventTime`` (the first
    occurrence) and ``series.lastObservedTime`` (the latest repeat).
    """
    candidates = [
        (event.get("series") or {}).get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        (event.get("metadata") or {}).get("creationTimestamp"),
    ]
    times = [t for t in (time_s(text) for text in candidates) if t is not None]
    return max(times) if times else None


async def pod_event_problems(
    api: KubeApi, namespace: str, pods: Mapping[str, str], now_s: float
) -> dict[str, tuple[str, str]]:
    """The latest recent Warning Event with a reason in :data:`EVENT_PROBLEMS` about each pod.

    One LIST of the namespace's Warning Events for all the pods asked about.

    Args:
        api: The Kubernetes client.
        namespace: The pods' namespace.
        pods: The pods asked about: uid → name (an Event names the pod's uid, so one about an
            earlier pod of the same name is not taken for this one's).
        now_s: Now (epoch seconds): Events last seen more than :data:`EVENT_RECENT_S` before are old.

    Returns:
        ``(reason, message)`` by pod name, for the pods such an Event is about.
    """
    selector = quote("type=Warning,involvedObject.kind=Pod", safe="")
    answer = await api.request("GET", f"{core_path('events', namespace)}?fieldSelector={selector}")
    latest: dict[tuple[str, str], tuple[int, float, str]] = {}
    seen: dict[tuple[str, str], int] = {}
    for event in answer.get("items") or []:
        uid = str((event.get("involvedObject") or {}).get("uid") or "")
        seen_s = event_time_s(event)
        if (
            uid not in pods  # also a selector the server ignores
            or event.get("type") != "Warning"
            or event.get("reason") not in EVENT_PROBLEMS
            or seen_s is None
            or now_s - seen_s > EVENT_RECENT_S
        ):
            continue
        # Repeats count whether the kubelet folded them into one Event or (messages that differ,
        # say a cloud request id) wrote several; the message told most often (then latest) is named.
        key = (pods[uid], str(event["reason"]))
        count = event_count(event)
        seen[key] = seen.get(key, 0) + count
        told = (count, seen_s, str(event.get("message") or "no message"))
        if key not in latest or told[:2] > latest[key][:2]:
            latest[key] = told
    found: dict[str, tuple[float, tuple[str, str]]] = {}
    for (name, reason), (_, seen_s, message) in latest.items():
        if seen[(name, reason)] >= EVENT_REPEATS and (name not in found or seen_s > found[name][0]):
            found[name] = (seen_s, (reason, message))
    return {name: problem for name, (_, problem) in found.items()}


def container_terminated(pod: Mapping[str, Any] | None, container: str) -> dict[str, Any] | None:
    """The terminated state of a pod's container of that name, once it has exited (``None`` before)."""
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            terminated = (status.get("state") or {}).get("terminated")
            return dict(terminated) if terminated else None
    return None


def merge_patch_to(applied: Any, wanted: Any) -> Any:
    """A JSON merge patch (RFC 7386) that turns what was applied into what is wanted.

    Keys that were applied and are no longer wanted become ``null``; objects are compared key by
    key, anything else (lists included) is replaced. Keys the operator never applied (another
    controller's) are left alone.
    """
    if not isinstance(applied, dict) or not isinstance(wanted, dict):
        return wanted
    # A map dropped whole: null only the keys the operator applied (another hand's stay).
    patch: dict[str, Any] = {
        key: {k: None for k in value} if isinstance(value, dict) and value else None
        for key, value in applied.items()
        if key not in wanted
    }
    for key, value in wanted.items():
        patch[key] = merge_patch_to(applied.get(key), value) if key in applied else value
    return patch
