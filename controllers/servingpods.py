"""The Kubernetes objects that serve one InferenceService (pure builders, no I/O).

* ``<name>-cpu``: a Deployment of CPU **model-server** replicas (``python -m roma.server``),
  ``replicas.min`` to start with; each container asks ``cpu.coresMax`` (request = limit, what
  the law starts a replica with) and says ``resizePolicy: cpu NotRequired``, so the operator
  can move its cores in place (``pods/{name}/resize``) without a restart. The operator scales
  this Deployment itself (through ``/scale``); nothing else should.
* ``<name>-gpu``: when ``gpu.count > 0``, a Deployment of ``gpu.count`` GPU replicas, each with
  one ``gpu.resourceName`` (``nvidia.com/gpu``) and ``--accelerator``, so the router's
  dispatcher sends them the requests that most need speed.
* ``<name>-router``: one **router** (``python -m roma.router``): the single entry point, its
  queue, the latency sensor (``/stats``) and the CPU/GPU dispatcher.
* ``<name>``: the Service in front of the router (what clients call, and what the operator reads).
* ``<name>-replicas``: a headless Service naming every model-server pod (DNS, scraping).
* ``<name>-router-admin``: a Secret with the token the router's admin API asks for. The
  router's port is the one its Service offers every client; only the operator, which made the
  token, may change the replica set (else any pod could send the model's requests elsewhere).

How the router learns its replicas: the operator registers them. Every control period it
``PUT``s the ready model-server pods (name, ``http://<podIP>:8080``, CPU or GPU) on the
router's ``/admin/replicas``, which the router applies as the complete set (idempotent). So a
restarted router is whole again one period later, and a replica leaves the rotation as soon as
its pod stops being ready, without the router needing any Kubernetes access. The router is
ready as soon as it answers ``/stats``: it must be reachable through its Service before any
replica is registered (requests arriving earlier wait in its queue).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any

from controllers.kube import MANAGED_BY, child_labels
from mlscale.podtemplate import NO_API_TOKEN, PodTemplate, layer, merge_pod
from mlscale.units import format_cpu
from roma.api import (
    ADMIN_TOKEN_FILE_ENV,
    KIND,
    ROUTER_ADMIN_VOLUME,
    ROUTER_CONTAINER,
    SERVER_CONTAINER,
    InferenceService,
)

SERVER_PORT = 8080
"""Port every model server listens on."""
ROUTER_PORT = 8080
"""Port of the router and of the Service in front of it."""
APPLIED_TEMPLATE = "mlscale.dev/applied-pod-template"
"""Annotation of each Deployment: the pod template the operator last applied (JSON), so that an
update removes what the spec no longer asks for and leaves what others added."""
SERVED_SPEC = "mlscale.dev/served-spec"
"""Annotation of the CPU Deployment: the InferenceService spec its children were last made from
(the loop serves by it while a later change of the spec is refused)."""
CPU_REPLICA = "cpu-replica"
GPU_REPLICA = "gpu-replica"
ROUTER = "router"
ROLE_LABEL = "mlscale.dev/role"
MODEL_SERVER_ROLE = "model-server"
READY_PATH = "/v2/health/ready"
STATS_PATH = "/stats"
ADMIN_TOKEN_KEY = "token"
"""Key of the router admin Secret's token."""
ROUTER_ADMIN_DIR = "/var/run/mlscale/router-admin"
"""Where the router pod mounts its admin Secret."""
ROUTER_CORES = "500m"
ROUTER_MEMORY = "512Mi"
_PYTHON_ENV = [
    {"name": "PYTHONUNBUFFERED", "value": "1"},
    {"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"},
]


def cpu_deployment_name(name: str) -> str:
    """Name of the Deployment of CPU replicas."""
    return f"{name}-cpu"


def gpu_deployment_name(name: str) -> str:
    """Name of the Deployment of GPU replicas."""
    return f"{name}-gpu"


def router_deployment_name(name: str) -> str:
    """Name of the router's Deployment."""
    return f"{name}-{ROUTER}"


def router_service_name(name: str) -> str:
    """Name of the Service in front of the router: the service's own name."""
    return name


def replicas_service_name(name: str) -> str:
    """Name of the headless Service of the model-server pods."""
    return f"{name}-replicas"


def service_labels(name: str) -> dict[str, str]:
    """Labels every child of the InferenceService carries, whatever its component."""
    return {**MANAGED_BY, f"mlscale.dev/{KIND.lower()}": name}


def component_labels(name: str, component: str) -> dict[str, str]:
    """Labels of one component's objects (``cpu-replica``, ``gpu-replica``, ``router``)."""
    return child_labels(KIND, name, component)


def model_server_selector(name: str) -> dict[str, str]:
    """What selects every model-server pod of the service, CPU and GPU."""
    return {**service_labels(name), ROLE_LABEL: MODEL_SERVER_ROLE}


def memory_quantity(bytes_: int) -> str:
    """A byte count as Kubernetes writes memory (``Mi`` when whole)."""
    mebibytes, rest = divmod(bytes_, 2**20)
    return f"{mebibytes}Mi" if rest == 0 and mebibytes > 0 else str(bytes_)


def server_command(svc: InferenceService, *, accelerator: bool) -> list[str]:
    """The model server's command line: model, batching, threads, the accelerator flag."""
    spec = svc.spec
    source = ["--builder", spec.model.builder] if spec.model.builder else ["--uri", str(spec.model.uri)]
    command = [
        "python", "-m", "roma.server",
        "--name", spec.model.name,
        *source,
        "--host", "0.0.0.0",  # answer the router through the pod IP, not only on loopback
        "--port", str(SERVER_PORT),
        "--max-batch-size", str(spec.batching.max_batch_size),
        "--max-delay-ms", repr(spec.batching.max_delay_ms),
        # As many intra-op threads as the replica may ever have cores.
        "--threads", str(max(1, math.ceil(spec.cpu.cores_max))),
    ]  # fmt: skip
    if accelerator:
        command.append("--accelerator")
    return command


def router_command(svc: InferenceService) -> list[str]:
    """The router's command line: the model with its SLO, the window, the GPU margin."""
    spec = svc.spec
    return [
        "python", "-m", "roma.router",
        "--model", f"{spec.model.name}:{spec.slo.latency_ms:g}:{spec.slo.percentile:g}",
        # Two periods of samples per percentile, as ``mlscale run`` does.
        "--window-s", repr(2 * spec.control.period_seconds),
        "--alpha", repr(spec.gpu.alpha),
        "--host", "0.0.0.0",
        "--port", str(ROUTER_PORT),
    ]  # fmt: skip


def _server_container(svc: InferenceService, *, accelerator: bool) -> dict[str, Any]:
    spec = svc.spec
    assert spec.image, "the operator creates no replica without an image"
    resources = {"cpu": format_cpu(spec.cpu.cores_max), "memory": memory_quantity(spec.memory)}
    requests, limits = dict(resources), dict(resources)
    if accelerator:
        requests[spec.gpu.resource_name] = limits[spec.gpu.resource_name] = "1"
    return {
        "name": SERVER_CONTAINER,
        "image": spec.image,
        "command": server_command(svc, accelerator=accelerator),
        "env": list(_PYTHON_ENV),
        "ports": [{"name": "http", "containerPort": SERVER_PORT}],
        "resources": {"requests": requests, "limits": limits},
        # Cores change in place, without a restart; memory changes would need one.
        "resizePolicy": [
            {"resourceName": "cpu", "restartPolicy": "NotRequired"},
            {"resourceName": "memory", "restartPolicy": "RestartContainer"},
        ],
        "readinessProbe": {"httpGet": {"path": READY_PATH, "port": SERVER_PORT}, "periodSeconds": 2},
    }


def _deployment(
    name: str,
    labels: dict[str, str],
    pod_labels: dict[str, str],
    replicas: int,
    container: dict[str, Any],
    *,
    template: PodTemplate | None = None,
    volumes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "metadata": {"labels": {**labels, **pod_labels}},
        "spec": {**NO_API_TOKEN, "containers": [container], "terminationGracePeriodSeconds": 10},
    }
    if volumes:
        pod["spec"]["volumes"] = volumes
    pod = merge_pod(pod, template, container["name"])  # the user's template
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "labels": dict(labels),
            "annotations": {APPLIED_TEMPLATE: json.dumps(pod, sort_keys=True, separators=(",", ":"))},
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)}, "template": pod},
    }


def cpu_deployment(svc: InferenceService) -> dict[str, Any]:
    """The Deployment of CPU replicas (``replicas.min`` of them, each at ``coresMax``)."""
    name = svc.metadata.name
    labels = component_labels(name, CPU_REPLICA)
    container = _server_container(svc, accelerator=False)
    role = {ROLE_LABEL: MODEL_SERVER_ROLE}
    template = svc.spec.template
    return _deployment(cpu_deployment_name(name), labels, role, svc.spec.replicas.min, container, template=template)


def gpu_deployment(svc: InferenceService) -> dict[str, Any]:
    """The Deployment of GPU replicas (``gpu.count`` of them, one GPU each)."""
    name = svc.metadata.name
    labels = component_labels(name, GPU_REPLICA)
    container = _server_container(svc, accelerator=True)
    role = {ROLE_LABEL: MODEL_SERVER_ROLE}
    template = layer(svc.spec.template, svc.spec.gpu.template)
    return _deployment(gpu_deployment_name(name), labels, role, svc.spec.gpu.count, container, template=template)


def router_admin_secret_name(name: str) -> str:
    """Name of the Secret holding the router's admin token."""
    return f"{name}-router-admin"


def router_admin_secret(name: str, token: str) -> dict[str, Any]:
    """The Secret holding the token the router's admin API asks for (made once per service)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": router_admin_secret_name(name), "labels": component_labels(name, ROUTER)},
        "type": "Opaque",
        "data": {ADMIN_TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }


def admin_token_of(secret: Mapping[str, Any]) -> str | None:
    """The token a router admin Secret holds (None: none, or not one the operator wrote)."""
    data = (secret.get("data") or {}).get(ADMIN_TOKEN_KEY)
    try:
        return base64.b64decode(data, validate=True).decode() if isinstance(data, str) and data else None
    except ValueError:
        return None


def router_deployment(svc: InferenceService) -> dict[str, Any]:
    """The router's Deployment (one replica: it holds the queue and the measurements)."""
    name = svc.metadata.name
    assert svc.spec.image, "the operator creates no router without an image"
    labels = component_labels(name, ROUTER)
    resources = {"cpu": ROUTER_CORES, "memory": ROUTER_MEMORY}
    container = {
        "name": ROUTER_CONTAINER,
        "image": svc.spec.image,
        "command": router_command(svc),
        "env": [*_PYTHON_ENV, {"name": ADMIN_TOKEN_FILE_ENV, "value": f"{ROUTER_ADMIN_DIR}/{ADMIN_TOKEN_KEY}"}],
        "volumeMounts": [{"name": ROUTER_ADMIN_VOLUME, "mountPath": ROUTER_ADMIN_DIR, "readOnly": True}],
        "ports": [{"name": "http", "containerPort": ROUTER_PORT}],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        # Ready once it answers: the operator registers the replicas through the Service.
        "readinessProbe": {"httpGet": {"path": STATS_PATH, "port": ROUTER_PORT}, "periodSeconds": 2},
    }
    # The token file follows the Secret (the kubelet updates a mounted Secret in place): a token
    # the operator replaces reaches a running router. Optional: a router started before the
    # Secret exists answers no admin request until it appears.
    volume = {"name": ROUTER_ADMIN_VOLUME, "secret": {"secretName": router_admin_secret_name(name), "optional": True}}
    return _deployment(
        router_deployment_name(name), labels, {}, 1, container, template=svc.spec.router_template, volumes=[volume]
    )


def router_service(svc: InferenceService) -> dict[str, Any]:
    """The Service in front of the router."""
    name = svc.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": router_service_name(name), "labels": component_labels(name, ROUTER)},
        "spec": {
            "selector": component_labels(name, ROUTER),
            "ports": [{"name": "http", "port": ROUTER_PORT, "targetPort": ROUTER_PORT}],
        },
    }


def replicas_service(svc: InferenceService) -> dict[str, Any]:
    """The headless Service of every model-server pod, CPU and GPU."""
    name = svc.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": replicas_service_name(name), "labels": component_labels(name, "replicas")},
        "spec": {
            "clusterIP": "None",
            "selector": model_server_selector(name),
            "ports": [{"name": "http", "port": SERVER_PORT, "targetPort": SERVER_PORT}],
        },
    }


def children(svc: InferenceService) -> list[tuple[str, str, dict[str, Any]]]:
    """Every child as ``(group/version, plural, object)``: Services, replicas, then the router."""
    objects: list[tuple[str, str, dict[str, Any]]] = [
        ("v1", "services", replicas_service(svc)),
        ("v1", "services", router_service(svc)),
        ("apps/v1", "deployments", cpu_deployment(svc)),
    ]
    if svc.spec.gpu.count > 0:
        objects.append(("apps/v1", "deployments", gpu_deployment(svc)))
    objects.append(("apps/v1", "deployments", router_deployment(svc)))
    return objects
