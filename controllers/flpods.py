"""The Kubernetes objects that run one FederatedTraining (pure builders, no I/O).

* A **coordinator** pod runs the round loop (``python -m hyperfl.coordinator``): the quality
  regulator, client selection, TFF aggregation and evaluation, a checkpoint per round in
  ``/checkpoints/<name>`` (the PVC ``spec.checkpointClaim``, else an emptyDir), and its progress on
  ``GET /status`` (port 8000, :mod:`hyperfl.coordinator_status`) behind the ClusterIP Service
  ``<name>-coordinator``, where the operator reads it.
* ``data.clients`` **client** pods (``python -m hyperfl.worker``), client ``i`` in pod
  ``<name>-client-<i>``, spread over zones (``topologySpreadConstraints`` on
  ``topology.kubernetes.io/zone``, skew 1, best effort) with ``spec.clientResources`` as request
  and limit. The headless Service ``<name>-clients`` gives each a DNS name,
  ``<name>-client-<i>.<name>-clients.<namespace>.svc``, which is how the coordinator reaches it.
"""

from __future__ import annotations

import json
from typing import Any

from controllers.kube import MANAGED_BY, child_labels
from hyperfl.api import CHECKPOINT_VOLUME, CLIENT_CONTAINER, COORDINATOR_CONTAINER, KIND, FederatedTraining
from hyperfl.coordinator_status import DEFAULT_PORT, HEALTH_PATH
from mlscale.podtemplate import NO_API_TOKEN, merge_pod
from mlscale.units import format_cpu

COORDINATOR = "coordinator"
CLIENT = "client"
WORKER_PORT = 8000
"""Port every client worker listens on."""
CHECKPOINT_MOUNT = "/checkpoints"
"""Where the checkpoint volume is mounted in the coordinator pod."""
EMPTY_DIR = "emptyDir"
"""The checkpoint volume's name in ``status.checkpoint`` when no claim is given."""
ZONE_KEY = "topology.kubernetes.io/zone"
INDEX_LABEL = "mlscale.dev/client-index"
RESOURCE_ENV = "MLSCALE_FL_RESOURCE"
"""Environment variable holding the FederatedTraining (JSON) in the coordinator pod."""
_PYTHON_ENV = [
    {"name": "PYTHONUNBUFFERED", "value": "1"},
    {"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"},
]


def coordinator_pod_name(name: str) -> str:
    """Name of the coordinator pod."""
    return f"{name}-{COORDINATOR}"


def coordinator_service_name(name: str) -> str:
    """Name of the Service in front of the coordinator's status server."""
    return f"{name}-{COORDINATOR}"


def client_pod_name(name: str, index: int) -> str:
    """Name (and host name) of the pod serving client ``index``."""
    return f"{name}-{CLIENT}-{index}"


def clients_service_name(name: str) -> str:
    """Name of the headless Service that gives every client pod a DNS name."""
    return f"{name}-{CLIENT}s"


def training_labels(name: str) -> dict[str, str]:
    """Labels every child of the training carries, whatever its component."""
    return {**MANAGED_BY, f"mlscale.dev/{KIND.lower()}": name}


def component_labels(name: str, component: str) -> dict[str, str]:
    """Labels of one component's children (``coordinator`` or ``client``): what Services select."""
    return child_labels(KIND, name, component)


def worker_url_template(name: str, namespace: str) -> str:
    """URL of client ``{index}``'s worker as the coordinator calls it (``{index}`` is left to fill)."""
    host = f"{name}-{CLIENT}-{{index}}.{clients_service_name(name)}.{namespace}.svc"
    return f"http://{host}:{WORKER_PORT}"


def checkpoint_dir(name: str) -> str:
    """The coordinator's checkpoint folder (one per training, so trainings may share a claim)."""
    return f"{CHECKPOINT_MOUNT}/{name}"


def checkpoint_reference(job: FederatedTraining, path: str | None) -> str | None:
    """A checkpoint path inside the coordinator pod as ``status.checkpoint`` names it: ``claim:/path``.

    The path is relative to the volume's root, so it is also where the file is for any other pod
    mounting the claim. Without a claim the volume is the coordinator pod's emptyDir.
    """
    if not path:
        return None
    volume = job.spec.checkpoint_claim or EMPTY_DIR
    if ":" in path.split("/", 1)[0]:
        return path  # already a reference
    inner = path.removeprefix(CHECKPOINT_MOUNT) if path.startswith(CHECKPOINT_MOUNT + "/") else path
    return f"{volume}:{inner}"


def _memory(bytes_: int) -> str:
    mebibytes, rest = divmod(bytes_, 2**20)
    return f"{mebibytes}Mi" if rest == 0 and mebibytes > 0 else str(bytes_)


def _resource_document(job: FederatedTraining) -> str:
    """The resource as the coordinator reads it: kind, name, namespace and the validated spec."""
    document = {
        "apiVersion": job.api_version,
        "kind": job.kind,
        "metadata": {"name": job.metadata.name, "namespace": job.metadata.namespace},
        # The pod templates shape pods, which the coordinator never builds: left out.
        "spec": job.spec.model_dump(
            mode="json", by_alias=True, exclude_none=True, exclude={"coordinator_template", "client_template"}
        ),
    }
    return json.dumps(document, separators=(",", ":"))


def coordinator_pod(job: FederatedTraining, namespace: str) -> dict[str, Any]:
    """The coordinator pod: the round loop, its checkpoints, its status server; its template merged in."""
    name = job.metadata.name
    assert job.spec.image, "admission refuses a FederatedTraining without an image"
    claim = job.spec.checkpoint_claim
    volume: dict[str, Any] = {"name": CHECKPOINT_VOLUME}
    if claim:
        volume["persistentVolumeClaim"] = {"claimName": claim}
    else:
        volume["emptyDir"] = {}
    command = [
        "python", "-m", "hyperfl.coordinator",
        "--port", str(DEFAULT_PORT),
        "--checkpoint-dir", checkpoint_dir(name),
        "--workers", str(job.spec.data.clients),
        "--worker-url-template", worker_url_template(name, namespace),
    ]  # fmt: skip
    container = {
        "name": COORDINATOR_CONTAINER,
        "image": job.spec.image,
        "command": command,
        "env": [*_PYTHON_ENV, {"name": RESOURCE_ENV, "value": _resource_document(job)}],
        "ports": [{"name": "status", "containerPort": DEFAULT_PORT}],
        "readinessProbe": {"httpGet": {"path": HEALTH_PATH, "port": DEFAULT_PORT}, "periodSeconds": 5},
        "volumeMounts": [{"name": CHECKPOINT_VOLUME, "mountPath": CHECKPOINT_MOUNT}],
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": coordinator_pod_name(name), "labels": component_labels(name, COORDINATOR)},
        "spec": {
            # A crashed coordinator restarts in the same pod and resumes from its checkpoint folder.
            "restartPolicy": "OnFailure",
            **NO_API_TOKEN,
            "containers": [container],
            "volumes": [volume],
        },
    }
    return merge_pod(pod, job.spec.coordinator_template, COORDINATOR_CONTAINER)


def client_pod(job: FederatedTraining, index: int) -> dict[str, Any]:
    """The pod serving client ``index`` over HTTP (a TensorFlow worker), spread across zones; its template merged in."""
    name = job.metadata.name
    assert job.spec.image, "admission refuses a FederatedTraining without an image"
    spec = job.spec
    data = spec.data
    resources = {"cpu": format_cpu(spec.client_resources.cores), "memory": _memory(spec.client_resources.memory)}
    command = [
        "python", "-m", "hyperfl.worker",
        "--builder", spec.model.builder,
        "--clients", str(data.clients),
        "--partition", data.partition.type,
        "--alpha", repr(data.partition.alpha),
        "--evaluation-fraction", repr(data.evaluation_fraction),
        "--seed", str(data.seed),
        "--host", "0.0.0.0",  # answer through the Service, not only on loopback
        "--port", str(WORKER_PORT),
    ]  # fmt: skip
    labels = component_labels(name, CLIENT)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": client_pod_name(name, index), "labels": {**labels, INDEX_LABEL: str(index)}},
        "spec": {
            "hostname": client_pod_name(name, index),
            "subdomain": clients_service_name(name),
            "restartPolicy": "Always",
            **NO_API_TOKEN,
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": ZONE_KEY,
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": labels},
                }
            ],
            "containers": [
                {
                    "name": CLIENT_CONTAINER,
                    "image": spec.image,
                    "command": command,
                    "env": list(_PYTHON_ENV),
                    "ports": [{"name": "worker", "containerPort": WORKER_PORT}],
                    "resources": {"requests": dict(resources), "limits": dict(resources)},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": WORKER_PORT}, "periodSeconds": 5},
                }
            ],
        },
    }
    return merge_pod(pod, job.spec.client_template, CLIENT_CONTAINER)


def clients_service(job: FederatedTraining) -> dict[str, Any]:
    """The headless Service naming every client pod (``publishNotReadyAddresses``: names exist at once)."""
    name = job.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": clients_service_name(name), "labels": component_labels(name, "clients")},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": component_labels(name, CLIENT),
            "ports": [{"name": "worker", "port": WORKER_PORT, "targetPort": WORKER_PORT}],
        },
    }


def coordinator_service(job: FederatedTraining) -> dict[str, Any]:
    """The Service in front of the coordinator's status server (what the operator reads)."""
    name = job.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": coordinator_service_name(name), "labels": component_labels(name, COORDINATOR)},
        "spec": {
            "selector": component_labels(name, COORDINATOR),
            "ports": [{"name": "status", "port": DEFAULT_PORT, "targetPort": DEFAULT_PORT}],
        },
    }


def children(job: FederatedTraining, namespace: str) -> list[tuple[str, dict[str, Any]]]:
    """Every child as ``(plural, object)``: the Services first, then the clients, the coordinator last."""
    objects: list[tuple[str, dict[str, Any]]] = [
        ("services", clients_service(job)),
        ("services", coordinator_service(job)),
    ]
    objects += [("pods", client_pod(job, i)) for i in range(job.spec.data.clients)]
    objects.append(("pods", coordinator_pod(job, namespace)))
    return objects
