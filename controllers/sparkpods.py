"""The Kubernetes objects that run one DeadlineJob's Spark application (pure builders, no I/O).

The driver runs ``spark-submit`` in client mode inside its own pod and asks the API server
(``--master k8s://https://kubernetes.default.svc``) for the executors, which it builds from the
pod template kept in a ConfigMap: ``ceil(coresMax)`` task slots each, CPU request = limit =
``coresMax`` at first, and ``resizePolicy`` cpu ``NotRequired`` so the operator can resize them
in place without restarting them. A headless Service gives the driver a stable name, which the
executors call back and the operator reads progress from (port 4040, Spark's REST API).

Each executor container starts :mod:`mlscale.cpu_meter` (kept in the same ConfigMap) in the
background before the image's entrypoint, so the operator can read the CPU it uses and its
throttling every control period (:mod:`controllers.executor_cpu`).
"""

from __future__ import annotations

import copy
import os
import shlex
from pathlib import Path
from typing import Any

import yaml

from controllers.kube import MANAGED_BY, child_labels
from dynaspark.api import (
    CPU_METER_VOLUME,
    DRIVER_CONTAINER,
    EXECUTOR_CONTAINER,
    EXECUTOR_TEMPLATE_VOLUME,
    SPARK_CONF_VOLUME,
    SPARK_LOCAL_DIR_PREFIX,
    DeadlineJob,
    memory_overhead,
)
from dynaspark.jvm import EXECUTOR_JAVA_OPTIONS, executor_java_options
from mlscale import cpu_meter
from mlscale.podtemplate import NO_API_TOKEN, merge_pod
from mlscale.units import format_cpu, spark_memory, spark_size

KIND = "DeadlineJob"
DRIVER_PORT = 7078
BLOCK_MANAGER_PORT = 7079
UI_PORT = 4040
TEMPLATE_DIR = "/opt/mlscale/executor-template"
TEMPLATE_KEY = "executor-pod.yaml"
METER_KEY = "cpu_meter.py"
METER_DIR = "/opt/mlscale/cpu-meter"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
K8S_MASTER = "k8s://https://kubernetes.default.svc"
SPARK_EXEC_ID_LABEL = "spark-exec-id"
"""The label Spark puts on each executor pod: its executor id, as the driver's REST API names it."""


def spark_submit_path() -> str:
    """Path of ``spark-submit`` inside the application image (``MLSCALE_SPARK_SUBMIT``)."""
    return os.environ.get("MLSCALE_SPARK_SUBMIT") or "/opt/spark/bin/spark-submit"


def meter_port() -> int | None:
    """The port of the executors' CPU meter (``MLSCALE_EXECUTOR_CPU_METER_PORT``); ``None`` when off (0)."""
    text = os.environ.get("MLSCALE_EXECUTOR_CPU_METER_PORT", "").strip() or str(cpu_meter.DEFAULT_PORT)
    try:
        port = int(text)
    except ValueError as exc:
        raise ValueError(
            f"MLSCALE_EXECUTOR_CPU_METER_PORT={text!r}: give a port number, or 0 to turn the meter off"
        ) from exc
    if not 0 <= port <= 65535:
        raise ValueError(f"MLSCALE_EXECUTOR_CPU_METER_PORT={port}: give a port in 1..65535, or 0 to turn the meter off")
    return port or None


def spark_entrypoint_path() -> str:
    """The application image's entrypoint, given Spark's ``executor`` argument (``MLSCALE_SPARK_ENTRYPOINT``)."""
    return os.environ.get("MLSCALE_SPARK_ENTRYPOINT") or "/opt/entrypoint.sh"


def executor_command(port: int) -> list[str]:
    """The executor container's command: the CPU meter in the background, then the image's entrypoint.

    Spark appends its own arguments (``executor``) to the container's, so they reach the
    entrypoint as ``"$@"``; ``exec`` leaves it the container's main process. An image without
    ``python3`` runs its executor without the meter; one without the entrypoint stops with a
    message that says which setting to change (the log says either).
    """
    entrypoint = shlex.quote(spark_entrypoint_path())
    script = (
        f'if [ ! -x {entrypoint} ]; then echo "mlscale: this image has no entrypoint at {entrypoint}: set '
        'MLSCALE_SPARK_ENTRYPOINT on the operator, or spec.executors.cpuMeter: false in the DeadlineJob" >&2; '
        "exit 127; fi; "
        "if command -v python3 >/dev/null 2>&1; then "
        f"python3 -I {METER_DIR}/{METER_KEY} --port {port} & "
        'else echo "mlscale: no python3 in this image: no CPU meter, the executor runs without the usage cap" >&2; '
        f'fi; exec {entrypoint} "$@"'
    )
    return ["/bin/sh", "-c", script, "mlscale-executor"]


def driver_pod_name(job_name: str) -> str:
    """Name of the driver pod."""
    return f"{job_name}-driver"


def driver_service_name(job_name: str) -> str:
    """Name of the driver's headless Service (also the driver's host name)."""
    return f"{job_name}-driver"


def template_configmap_name(job_name: str) -> str:
    """Name of the ConfigMap holding the executor pod template."""
    return f"{job_name}-executor-template"


def spark_account_name(job_name: str) -> str:
    """Name of the driver's ServiceAccount (when its template names none), Role and RoleBinding."""
    return f"{job_name}-spark"


def driver_account(job: DeadlineJob) -> str:
    """The ServiceAccount the driver runs as: its template's, or the one the operator creates."""
    template = job.spec.driver.template
    account = template.spec.get("serviceAccountName") if template is not None else None
    return str(account) if account else spark_account_name(job.metadata.name)


def creates_account(job: DeadlineJob) -> bool:
    """Whether the operator creates the driver's ServiceAccount (its template names none)."""
    return driver_account(job) == spark_account_name(job.metadata.name)


def job_labels(job_name: str) -> dict[str, str]:
    """Labels every child of the job carries, whatever its component."""
    return {**MANAGED_BY, f"mlscale.dev/{KIND.lower()}": job_name}


def executor_labels(job_name: str) -> dict[str, str]:
    """Labels of the executor pods: what the controller selects them by."""
    return child_labels(KIND, job_name, "executor")


def application_path(main_application_file: str) -> str:
    """The application as ``spark-submit`` inside the image reads it (``local://`` means a path in the image)."""
    return main_application_file.removeprefix("local://")


def spark_conf(job: DeadlineJob, namespace: str) -> dict[str, str]:
    """The Spark configuration of the job: its own ``sparkConf`` first, the keys the operator needs over it."""
    name = job.metadata.name
    app = job.spec.application
    ex = job.spec.executors
    conf = dict(app.spark_conf)
    conf.update(
        {
            "spark.app.name": name,
            "spark.kubernetes.namespace": namespace,
            "spark.kubernetes.container.image": app.image or "",
            "spark.kubernetes.driver.pod.name": driver_pod_name(name),
            "spark.kubernetes.authenticate.caCertFile": f"{SERVICE_ACCOUNT_DIR}/ca.crt",
            "spark.kubernetes.authenticate.oauthTokenFile": f"{SERVICE_ACCOUNT_DIR}/token",
            "spark.kubernetes.executor.podTemplateFile": f"{TEMPLATE_DIR}/{TEMPLATE_KEY}",
            "spark.kubernetes.executor.podTemplateContainerName": EXECUTOR_CONTAINER,
            "spark.kubernetes.executor.request.cores": format_cpu(ex.cores_max),
            "spark.kubernetes.executor.limit.cores": format_cpu(ex.cores_max),
            "spark.driver.host": f"{driver_service_name(name)}.{namespace}.svc",
            "spark.driver.bindAddress": "0.0.0.0",
            "spark.driver.port": str(DRIVER_PORT),
            "spark.driver.blockManager.port": str(BLOCK_MANAGER_PORT),
            "spark.ui.port": str(UI_PORT),
            "spark.ui.showConsoleProgress": "false",
            "spark.executor.cores": str(ex.task_slots),
            "spark.executor.instances": str(ex.instances),
            "spark.executor.memory": spark_memory(ex.memory),
            "spark.dynamicAllocation.enabled": "false",
            **driver_memory(job),
            EXECUTOR_JAVA_OPTIONS: executor_java_options(app.spark_conf),
        }
    )
    for key, value in executor_labels(name).items():
        conf[f"spark.kubernetes.executor.label.{key}"] = value
    return conf


def driver_memory(job: DeadlineJob) -> dict[str, str]:
    """``spark.driver.memory`` sized to the driver pod's ``spec.driver.memory`` (none where the job sets it).

    In client mode spark-submit starts the driver JVM with that heap (1g without it, whatever
    the pod's memory): a larger pod would leave it unused, a smaller one would be OOM-killed.
    """
    heap = job.spec.driver_heap
    return {} if heap is None else {"spark.driver.memory": f"{heap // 2**20}m"}


def spark_submit_command(job: DeadlineJob, namespace: str) -> list[str]:
    """The driver container's command: ``spark-submit`` in client mode against the cluster."""
    app = job.spec.application
    command = [spark_submit_path(), "--master", K8S_MASTER, "--deploy-mode", "client", "--name", job.metadata.name]
    for key, value in spark_conf(job, namespace).items():
        command += ["--conf", f"{key}={value}"]
    if app.main_class:
        command += ["--class", app.main_class]
    return [*command, application_path(app.main_application_file), *app.arguments]


def executor_pod_template(job: DeadlineJob) -> dict[str, Any]:
    """The executor pod template: our labels, CPU resizable in place without a restart, the CPU meter.

    The job's ``spec.executors.template`` is merged in (:func:`mlscale.podtemplate.merge_pod`).
    """
    container: dict[str, Any] = {
        "name": EXECUTOR_CONTAINER,
        "image": job.spec.application.image,
        "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}],
    }
    spec: dict[str, Any] = {**NO_API_TOKEN, "containers": [container]}
    port = meter_port() if job.spec.executors.cpu_meter else None
    if port is not None:
        container["command"] = executor_command(port)
        container["volumeMounts"] = [{"name": CPU_METER_VOLUME, "mountPath": METER_DIR, "readOnly": True}]
        spec["volumes"] = [
            {
                "name": CPU_METER_VOLUME,
                "configMap": {
                    "name": template_configmap_name(job.metadata.name),
                    "items": [{"key": METER_KEY, "path": METER_KEY}],
                },
            }
        ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": executor_labels(job.metadata.name)},
        "spec": spec,
    }
    return merge_pod(pod, job.spec.executors.template, EXECUTOR_CONTAINER)


def executor_pod_memory(job: DeadlineJob) -> str:
    """The memory Spark asks for each executor pod (request = limit): heap, overhead and off-heap memory.

    The overhead is ``spark.executor.memoryOverhead`` when set, otherwise the overhead factor
    (``spark.executor.memoryOverheadFactor``, else ``spark.kubernetes.memoryOverheadFactor``,
    else 0.1) times the heap, at least ``spark.executor.minMemoryOverhead`` (384 MiB). The
    driver runs in client mode, where Spark adds no ``spark.executor.pyspark.memory`` to the pod.
    """
    conf = job.spec.application.spark_conf
    mib = 2**20
    heap = max(1, job.spec.executors.memory // mib)
    fixed, factor, least = memory_overhead(conf, "executor", 0.1)
    overhead = fixed // mib if fixed is not None else max(int(factor * heap), least // mib)
    off_heap = 0
    if conf.get("spark.memory.offHeap.enabled", "").strip().lower() == "true":
        off_heap = (spark_size(conf.get("spark.memory.offHeap.size"), "b") or 0) // mib
    return f"{heap + overhead + off_heap}Mi"


def executor_pod_check(job: DeadlineJob) -> dict[str, Any]:
    """An executor pod as Spark will ask for it, for the API server to admit in a dry run before the job starts.

    The executor pod template with what Spark adds that admission looks at: CPU and memory
    (request = limit), ``restartPolicy: Never``, its configuration volume at ``/opt/spark/conf``
    and a local directory. Validation, Pod Security admission and LimitRanges that would refuse
    the executors refuse this pod first, before the driver starts and the deadline runs.
    """
    pod = copy.deepcopy(executor_pod_template(job))
    pod["metadata"]["generateName"] = f"{job.metadata.name}-exec-check-"
    spec = pod["spec"]
    spec["restartPolicy"] = "Never"
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    conf = job.spec.application.spark_conf
    if conf.get("spark.kubernetes.executor.disableConfigMap", "").strip().lower() != "true":
        volumes.append({"name": SPARK_CONF_VOLUME, "configMap": {"name": f"{job.metadata.name}-exec-conf-map"}})
        mounts.append({"name": SPARK_CONF_VOLUME, "mountPath": "/opt/spark/conf"})
    cpu = format_cpu(job.spec.executors.cores_max)
    resources = {"cpu": cpu, "memory": executor_pod_memory(job)}
    for container in spec["containers"]:
        if container["name"] != EXECUTOR_CONTAINER:
            continue
        container["resources"] = {"requests": dict(resources), "limits": dict(resources)}
        container["args"] = ["executor"]
        # Spark mounts an emptyDir for its local directory unless the template mounts one of its own.
        own = {m.get("name", "") for m in container.get("volumeMounts", [])}
        if not any(name.startswith(SPARK_LOCAL_DIR_PREFIX) for name in own):
            volumes.append({"name": f"{SPARK_LOCAL_DIR_PREFIX}1", "emptyDir": {}})
            mounts.append({"name": f"{SPARK_LOCAL_DIR_PREFIX}1", "mountPath": "/var/data/spark-check"})
        container["volumeMounts"] = [*container.get("volumeMounts", []), *mounts]
    spec["volumes"] = [*spec.get("volumes", []), *volumes]
    return pod


def template_configmap(job: DeadlineJob) -> dict[str, Any]:
    """The ConfigMap holding the executor pod template (mounted into the driver) and the CPU meter."""
    data = {TEMPLATE_KEY: yaml.safe_dump(executor_pod_template(job), sort_keys=False)}
    if job.spec.executors.cpu_meter and meter_port() is not None:
        data[METER_KEY] = Path(cpu_meter.__file__).read_text()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": template_configmap_name(job.metadata.name),
            "labels": child_labels(KIND, job.metadata.name, "executor-template"),
        },
        "data": data,
    }


def driver_pod(job: DeadlineJob, namespace: str) -> dict[str, Any]:
    """The driver pod: ``spark-submit`` in client mode, the template mounted, never restarted.

    The job's ``spec.driver.template`` is merged in (:func:`mlscale.podtemplate.merge_pod`).
    """
    name = job.metadata.name
    cpu = format_cpu(job.spec.driver.cores)
    memory = f"{max(1, job.spec.driver.memory // 2**20)}Mi"
    resources = {"cpu": cpu, "memory": memory}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": driver_pod_name(name),
            "labels": {**child_labels(KIND, name, "driver"), "spark-role": "driver"},
            "annotations": {"kubectl.kubernetes.io/default-container": DRIVER_CONTAINER},
        },
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": driver_account(job),
            # It asks the API server for its executors: its token is mounted even where the
            # account turns automounting off (a common hardening of ServiceAccounts).
            "automountServiceAccountToken": True,
            "containers": [
                {
                    "name": DRIVER_CONTAINER,
                    "image": job.spec.application.image,
                    "command": spark_submit_command(job, namespace),
                    "ports": [
                        {"name": "driver-rpc", "containerPort": DRIVER_PORT},
                        {"name": "blockmanager", "containerPort": BLOCK_MANAGER_PORT},
                        {"name": "spark-ui", "containerPort": UI_PORT},
                    ],
                    "resources": {"requests": dict(resources), "limits": dict(resources)},
                    "volumeMounts": [{"name": EXECUTOR_TEMPLATE_VOLUME, "mountPath": TEMPLATE_DIR, "readOnly": True}],
                }
            ],
            "volumes": [{"name": EXECUTOR_TEMPLATE_VOLUME, "configMap": {"name": template_configmap_name(name)}}],
        },
    }
    return merge_pod(pod, job.spec.driver.template, DRIVER_CONTAINER)


def driver_service(job: DeadlineJob) -> dict[str, Any]:
    """The driver's headless Service: executors call back through it, the operator reads progress."""
    name = job.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": driver_service_name(name), "labels": child_labels(KIND, name, "driver")},
        "spec": {
            "clusterIP": "None",
            "selector": child_labels(KIND, name, "driver"),
            "ports": [
                {"name": "driver-rpc", "port": DRIVER_PORT, "targetPort": DRIVER_PORT},
                {"name": "blockmanager", "port": BLOCK_MANAGER_PORT, "targetPort": BLOCK_MANAGER_PORT},
                {"name": "spark-ui", "port": UI_PORT, "targetPort": UI_PORT},
            ],
        },
    }


def spark_service_account(job: DeadlineJob) -> dict[str, Any]:
    """The ServiceAccount the driver asks for executors with."""
    name = job.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": spark_account_name(name), "labels": child_labels(KIND, name, "driver")},
    }


def spark_role(job: DeadlineJob) -> dict[str, Any]:
    """What the driver may do in its namespace: manage its executor pods and what they need."""
    name = job.metadata.name
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": spark_account_name(name), "labels": child_labels(KIND, name, "driver")},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["pods", "services", "configmaps", "persistentvolumeclaims"],
                "verbs": ["get", "list", "watch", "create", "patch", "delete", "deletecollection"],
            }
        ],
    }


def spark_role_binding(job: DeadlineJob, namespace: str) -> dict[str, Any]:
    """Binds the driver's Role to the ServiceAccount it runs as (its template's, or the operator's)."""
    name = job.metadata.name
    role = spark_account_name(name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": role, "labels": child_labels(KIND, name, "driver")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": driver_account(job), "namespace": namespace}],
    }
