"""The DeadlineJob resource: a Spark application that must finish by a deadline."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any, Final, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mlscale.api import (
    ApiModel,
    Condition,
    CpuQuantity,
    Duration,
    MemoryQuantity,
    Resource,
    StatusModel,
    admitted,
    check_core_range,
)
from mlscale.podtemplate import PodTemplate, template_problems
from mlscale.units import spark_size

DRIVER_CONTAINER: Final = "driver"
"""Name of the container that runs spark-submit in the driver pod."""
EXECUTOR_CONTAINER: Final = "executor"
"""Name of the executor container in the executor pod template."""
EXECUTOR_TEMPLATE_VOLUME: Final = "executor-template"
"""The driver pod's volume holding the executor pod template."""
CPU_METER_VOLUME: Final = "mlscale-cpu-meter"
"""The executor pod's volume holding the CPU meter."""
SPARK_CONF_VOLUME: Final = "spark-conf-volume-exec"
"""The volume Spark adds to each executor pod for its configuration (``/opt/spark/conf``)."""
SPARK_LOCAL_DIR_PREFIX: Final = "spark-local-dir-"
"""Names of the volumes Spark uses for its local directories: an emptyDir it adds, unless the
executor template mounts a volume of such a name (a claim for scratch space, say)."""

SPARK_MIN_MEMORY: Final = 450 * 2**20
"""The least ``spark.executor.memory`` an executor starts with: Spark reserves 300 MiB and refuses
less than 1.5 times that."""

MIN_MEMORY_OVERHEAD: Final = 384 * 2**20
"""The least memory Spark adds to a JVM's heap for the rest of its pod."""
DRIVER_MIN_HEAP: Final = 512 * 2**20
"""The least heap given to a driver JVM: Spark refuses less than 450 MiB as the JVM counts it, a
little under ``-Xmx``."""

KIND: Final = "DeadlineJob"
PLURAL = "deadlinejobs"

Phase = Literal["Pending", "Running", "Succeeded", "DeadlineMissed", "Failed"]


_DRIVER_WIRING = "the operator wires the driver's address and ports"
OPERATOR_SPARK_CONF: Final = {
    "spark.app.name": "it is metadata.name",
    "spark.master": "the operator submits to its own master (locally) or to the Kubernetes API",
    "spark.submit.deployMode": "the driver runs in client mode, in its pod or on this machine",
    "spark.executor.cores": "an executor's task slots come from spec.executors.coresMax",
    "spark.executor.instances": "it comes from spec.executors.instances",
    "spark.cores.max": "it comes from spec.executors.instances and coresMax",
    "spark.executor.memory": "it comes from spec.executors.memory",
    "spark.dynamicAllocation.enabled": "the law sizes a fixed set of executors (spec.executors.instances)",
    "spark.driver.host": _DRIVER_WIRING,
    "spark.driver.bindAddress": _DRIVER_WIRING,
    "spark.driver.port": _DRIVER_WIRING,
    "spark.driver.blockManager.port": _DRIVER_WIRING,
    "spark.ui.port": "the operator reads the driver's REST API on the port it chose",
    "spark.kubernetes.namespace": "executors run in the DeadlineJob's namespace",
    "spark.kubernetes.container.image": "it comes from spec.application.image",
    "spark.kubernetes.driver.pod.name": "the operator names the driver pod",
    "spark.kubernetes.executor.podTemplateFile": "the executor pod template comes from spec.executors.template",
    "spark.kubernetes.executor.podTemplateContainerName": "the executor's container is named executor",
    "spark.kubernetes.executor.request.cores": "an executor's CPU comes from spec.executors.coresMin/coresMax",
    "spark.kubernetes.executor.limit.cores": "an executor's CPU comes from spec.executors.coresMin/coresMax",
    "spark.kubernetes.authenticate.caCertFile": "the driver uses its pod's service account",
    "spark.kubernetes.authenticate.oauthTokenFile": "the driver uses its pod's service account",
}
"""``sparkConf`` keys the operator sets itself, and where their value comes from."""


class SparkApplication(ApiModel):
    """The Spark application to run."""

    type: Literal["Python", "Java", "Scala"] = "Python"
    """Language of the application; ``Java`` and ``Scala`` need ``mainClass``."""
    main_application_file: str = Field(min_length=1)
    """Path or URL of the application: a ``.py`` file, or a jar. Locally a path relative to the YAML file; in a
    cluster a path in the image (``local:///opt/app/job.py``), a relative one from the driver's working directory
    (``/opt/spark/work-dir`` in Spark's images), or a URL spark-submit can fetch."""
    main_class: str | None = None
    """Entry class of a jar application."""
    arguments: list[str] = Field(default_factory=list)
    """Command-line arguments passed to the application."""
    image: str | None = None
    """Container image with Spark and the application, used for the driver and executor pods in a cluster."""
    spark_conf: dict[str, str] = Field(default_factory=dict)
    """Extra Spark configuration (``spark.*`` keys); executor cores, instances and memory come from ``executors``.
    Executors get ``-XX:TieredStopAtLevel=1`` (C1 only) in ``spark.executor.extraJavaOptions`` unless those
    options set a compilation mode."""

    @field_validator("spark_conf")
    @classmethod
    def _no_operator_keys(cls, conf: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        if admitted(info):
            return conf
        problems = []
        for key in conf:
            if not key.startswith("spark."):
                problems.append(f"{key}: not a Spark property (Spark ignores keys outside spark.*); remove it")
            elif (source := OPERATOR_SPARK_CONF.get(key)) is not None:
                problems.append(f"{key}: {source}, and the operator sets it over yours; remove it")
        if problems:
            raise ValueError("; ".join(problems))
        return conf

    @model_validator(mode="after")
    def _main_class_for_jvm(self, info: ValidationInfo) -> SparkApplication:
        if self.type != "Python" and not self.main_class:
            raise ValueError(f"mainClass is required when type is {self.type}: name the application's entry class")
        if admitted(info):
            return self
        # spark-submit runs a primary resource ending in .py with Python (a query string included: it
        # looks at the end of the text), anything else as a jar.
        is_python = self.main_application_file.endswith(".py")
        if self.type == "Python" and not is_python:
            raise ValueError(
                f"mainApplicationFile {self.main_application_file!r} is not a .py file, and spark-submit would run "
                "it as a jar: name the application's .py file, or set type Java or Scala for a jar"
            )
        if self.type != "Python" and is_python:
            raise ValueError(
                f"mainApplicationFile {self.main_application_file!r} is a Python file: set type Python, or name a jar"
            )
        return self


class DriverTemplate(PodTemplate):
    """Fields added to the driver pod, as in a core/v1 PodTemplateSpec (cluster only).

    Volumes, node selector, tolerations, affinity, security context, image pull secrets,
    sidecars; the container named ``driver`` adds its ``env``, ``envFrom``, ``volumeMounts``
    and other fields to the one that runs spark-submit. A ``serviceAccountName`` replaces the
    account the operator would create: the operator binds its Role (pods, Services, ConfigMaps
    of the namespace, what the driver needs to run executors) to that account instead (not to
    ``default``). The application ends when the ``driver`` container exits: a sidecar should be
    a native one (an init container with ``restartPolicy: Always``), which stops with it.
    Ignored on one machine.
    """

    @model_validator(mode="after")
    def _fits(self) -> DriverTemplate:
        problems = template_problems(
            self,
            container=DRIVER_CONTAINER,
            owned_container_fields={
                "image": "the driver runs spec.application.image; set it there",
                "command": "the driver runs spark-submit, built from spec.application; remove it",
                "args": "the driver runs spark-submit, built from spec.application; remove it",
                "resources": "the driver's CPU and memory come from spec.driver.cores and spec.driver.memory; "
                "remove resources",
            },
            owned_pod_fields={"restartPolicy": "the driver pod is never restarted (Never); remove it"},
            reserved_volumes={EXECUTOR_TEMPLATE_VOLUME: "the executor pod template"},
        )
        if self.spec.get("serviceAccountName") == "default":
            problems.append(
                "spec.serviceAccountName: the operator binds the driver's Role (pods, Services and "
                "ConfigMaps of the namespace) to this account, and every pod without an account of its "
                "own runs as 'default'; name a dedicated account, or remove it to have one created"
            )
        if self.spec.get("automountServiceAccountToken") is False:
            problems.append(
                "spec.automountServiceAccountToken: the driver reads its account's token to ask the API "
                "server for executors; remove it"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ExecutorTemplate(PodTemplate):
    """Fields added to each executor pod, as in a core/v1 PodTemplateSpec (cluster only).

    Volumes, node selector, tolerations, affinity, security context, image pull secrets,
    sidecars; the container named ``executor`` adds its ``env``, ``envFrom``, ``volumeMounts``
    and other fields to the one Spark starts. Spark adds its own fields on top, as it does to
    any executor pod template. Ignored on one machine.
    """

    @model_validator(mode="after")
    def _fits(self) -> ExecutorTemplate:
        problems = template_problems(
            self,
            container=EXECUTOR_CONTAINER,
            owned_container_fields={
                "image": "executors run spec.application.image; set it there",
                "command": "Spark starts the executor (after the CPU meter); remove it",
                "args": "Spark starts the executor (after the CPU meter); remove it",
                "resources": "an executor's CPU comes from spec.executors.coresMin/coresMax and its memory "
                "from spec.executors.memory; remove resources",
                "resizePolicy": "the operator resizes the CPU in place (NotRequired); remove it",
            },
            owned_pod_fields={"restartPolicy": "Spark restarts no executor pod (Never); remove it"},
            reserved_volumes={
                CPU_METER_VOLUME: "the CPU meter",
                SPARK_CONF_VOLUME: "Spark's configuration",
            },
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Executors(ApiModel):
    """Executors and the CPU range the regulator may give each of them."""

    instances: int = Field(default=2, ge=1, le=1000)
    """Number of executors."""
    cores_min: CpuQuantity = 0.1
    """Fewest cores an executor is given (a CPU quantity, e.g. ``100m``; at least ``10m``, the least quota
    Linux enforces)."""
    cores_max: CpuQuantity = 1.0
    """Most cores an executor is given; also its number of task slots (rounded up)."""
    memory: MemoryQuantity = 1024**3
    """Memory of each executor (e.g. ``1Gi``; Spark needs at least ``450Mi``)."""
    cpu_meter: bool = True
    """In a cluster, start the CPU meter in each executor pod before the image's entrypoint, so the
    law can cap an executor at the CPU it uses (needs ``python3`` in the image and its entrypoint
    where the operator expects it, ``/opt/entrypoint.sh`` unless set otherwise). ``false`` runs
    the image's entrypoint as it is, without the usage cap. Ignored on one machine."""
    template: ExecutorTemplate | None = None
    """Fields added to each executor pod (volumes, env, node selector, tolerations, ...), as in a
    core/v1 PodTemplateSpec; the container named ``executor`` is Spark's. Cluster only."""

    @field_validator("memory")
    @classmethod
    def _spark_minimum(cls, memory: int, info: ValidationInfo) -> int:
        if memory < SPARK_MIN_MEMORY and not admitted(info):
            got = f"{memory // 2**20}Mi" if memory >= 2**20 else f"{memory} byte{'s' if memory != 1 else ''}"
            raise ValueError(
                "Spark needs at least 450Mi per executor (it reserves 300Mi and wants half as much again), "
                f"got {got}: raise it, e.g. '512Mi'"
            )
        return memory

    @model_validator(mode="after")
    def _core_range(self, info: ValidationInfo) -> Executors:
        check_core_range(self.cores_min, self.cores_max, info)
        return self

    @property
    def task_slots(self) -> int:
        """Task slots of one executor (``spark.executor.cores``): coresMax rounded up, at least one."""
        return max(1, math.ceil(self.cores_max - 1e-9))


class Driver(ApiModel):
    """The driver pod in a cluster: its resources and what else it needs."""

    cores: CpuQuantity = 1.0
    """CPU of the driver (e.g. ``1`` or ``500m``)."""
    memory: MemoryQuantity = 1024**3
    """Memory of the driver pod (e.g. ``1Gi``). Its JVM gets the heap (``spark.driver.memory``) that
    leaves room for Spark's overhead: 40 % of the heap for a Python application (its driver process
    shares the pod), 10 % for a jar, at least 384Mi; at least ``896Mi`` for a heap of 512Mi. Unless
    ``sparkConf`` sets ``spark.driver.memory`` or the overhead itself."""
    template: DriverTemplate | None = None
    """Fields added to the driver pod (volumes, env, service account, node selector, ...), as in
    a core/v1 PodTemplateSpec; the container named ``driver`` runs spark-submit. Cluster only."""


class DeadlineControl(ApiModel):
    """Settings of the deadline control law; the defaults suit most applications."""

    period_seconds: float = Field(default=1.0, gt=0, le=60)
    """Sampling period of the control loop in seconds.

    Each period reads the driver's REST API once and resizes the executors whose cores changed.
    Stages of a few seconds want a shorter one (the examples' last 1-3 s and use 0.5): a quota
    held for a whole period cannot follow them.
    """
    alpha: float = Field(default=0.95, gt=0, le=1)
    """Share of the deadline the plan aims at: the application deadline is start + alpha·deadline."""
    beta: float = Field(default=0.33, ge=0, le=1)
    """Weight of the remaining stage count against the profiled remaining duration in per-stage deadlines."""
    gain: float = Field(default=2.0, gt=0)
    """Proportional gain K of each executor's PI regulator (cores per unit of progress error).

    The default was tuned in closed loop: one finished task moves an executor's progress by
    1/(its tasks), so large gains swing the allocation across its whole range at every task.
    """
    integral_time_seconds: float = Field(default=12.0, gt=0)
    """Integral time Ti of each executor's PI regulator, in seconds."""


class DeadlineJobSpec(ApiModel):
    """What a DeadlineJob asks for."""

    deadline: Duration
    """Time from start by which the application must finish, e.g. ``10m`` or ``1h30m``."""
    application: SparkApplication
    """The Spark application."""
    executors: Executors = Field(default_factory=Executors)
    """Executors and their CPU range."""
    driver: Driver = Field(default_factory=Driver)
    """The driver pod: resources and template (cluster only)."""
    control: DeadlineControl = Field(default_factory=DeadlineControl)
    """Control-law settings."""

    @model_validator(mode="after")
    def _driver_heap(self, info: ValidationInfo) -> DeadlineJobSpec:
        if admitted(info):
            return self
        sizing = self._driver_sizing()
        if sizing is None:
            own = spark_size(self.application.spark_conf["spark.driver.memory"], "m")
            if own is not None and own >= self.driver.memory:
                raise ValueError(
                    f"application.sparkConf spark.driver.memory ({self.application.spark_conf['spark.driver.memory']}) "
                    f"is the driver JVM's heap alone and does not fit in driver.memory "
                    f"({self.driver.memory // 2**20}Mi), the driver pod's: raise driver.memory, or remove "
                    "spark.driver.memory to have the heap sized from it"
                )
            return self
        overhead, factor, minimum = sizing
        heap = _heap_in(self.driver.memory, overhead, factor, minimum)
        if heap < DRIVER_MIN_HEAP:
            if overhead is not None:
                least = DRIVER_MIN_HEAP + overhead
            else:
                least = max(DRIVER_MIN_HEAP + minimum, math.ceil(DRIVER_MIN_HEAP * (1 + factor)))
            raise ValueError(
                f"driver.memory ({self.driver.memory // 2**20}Mi) leaves the driver's JVM a heap of "
                f"{max(0, heap) // 2**20}Mi after Spark's memory overhead, and Spark's driver needs "
                f"{DRIVER_MIN_HEAP // 2**20}Mi: raise driver.memory to at least {-(-least // 2**20)}Mi"
            )
        return self

    @property
    def driver_heap(self) -> int | None:
        """The driver JVM's heap in a cluster (``spark.driver.memory``) in bytes, from ``driver.memory``.

        What is left of the pod's memory after Spark's driver overhead: ``spark.driver.memoryOverhead``
        where set, else the overhead factor (``spark.driver.memoryOverheadFactor``, else
        ``spark.kubernetes.memoryOverheadFactor``, else 0.4 for a Python application, whose driver
        process shares the container, and 0.1 for a jar) times the heap, at least
        ``spark.driver.minMemoryOverhead`` (384 MiB): what Spark itself adds to a heap to size a driver
        pod. ``None`` where the job's ``sparkConf``
        sets ``spark.driver.memory`` itself.
        """
        sizing = self._driver_sizing()
        return None if sizing is None else _heap_in(self.driver.memory, *sizing)

    def _driver_sizing(self) -> tuple[int | None, float, int] | None:
        """The driver's memory overhead in bytes where set, its factor and least; ``None`` where the heap is set."""
        conf = self.application.spark_conf
        if conf.get("spark.driver.memory"):
            return None
        return memory_overhead(conf, "driver", 0.4 if self.application.type == "Python" else 0.1)

    @field_validator("deadline")
    @classmethod
    def _positive_deadline(cls, deadline: float) -> float:
        if deadline <= 0:
            raise ValueError("must be positive, e.g. '90s' or '10m'")
        return deadline


class ExecutorAllocation(StatusModel):
    """What one executor was last given and how far it is."""

    id: str
    """Spark executor id."""
    cores: float
    """Cores allocated."""
    progress: float = 0.0
    """How far the executor is through its share of the current stage (0..1): its finished tasks,
    and its running ones by how long they have run against its finished ones' mean."""
    used_cores: float | None = None
    """CPU the executor used, in cores: over the last control period, as the CPU meter in its pod
    counted it; where that meter does not answer, as the resource metrics API (metrics-server)
    last measured it over its window; absent where neither does."""
    throttled_share: float | None = None
    """Share of the CFS periods (100 ms) of the last control period in which the executor ran out
    of CPU quota (wanted more than it was given), as the CPU meter in its pod counted it."""
    enforced_cores: float | None = None
    """The CPU limit the executor's container ran under at the start of the last control period,
    read from the kernel by the CPU meter in its pod: it trails ``cores`` by that period, and
    longer until the kubelet has applied a resize. Absent while the meter does not answer."""


class DeadlineJobStatus(StatusModel):
    """What the operator observed of a DeadlineJob."""

    phase: Phase = "Pending"
    """Pending, Running, Succeeded, DeadlineMissed or Failed."""
    conditions: list[Condition] = Field(default_factory=list)
    """Accepted, Submitted, DeadlineAtRisk, Contended, ResizeUnsupported, ResizeLagging, ProfileMissing, PodsWaiting."""
    observed_generation: int | None = None
    """The generation of the spec the operator last acted on."""
    start_time: dt.datetime | None = None
    """When the application started."""
    deadline_time: dt.datetime | None = None
    """start + deadline."""
    completion_time: dt.datetime | None = None
    """When the application finished."""
    progress: float | None = Field(default=None, ge=0, le=1)
    """Completed share of the application's work (0..1)."""
    stage: str | None = None
    """The stage now running."""
    allocated_cores: float | None = None
    """Cores allocated to all executors now."""
    used_cores: float | None = None
    """CPU all executors used: over the last control period, as the CPU meters in their pods
    counted it; where those do not answer, as the resource metrics API (metrics-server) last
    measured it; absent where neither does."""
    executors: list[ExecutorAllocation] = Field(default_factory=list)
    """Per-executor allocation."""
    resize_latency_seconds: float | None = None
    """How long the kubelet took to apply an in-place resize: the median over the latest 20, from
    the operator's request until the CPU meter in the pod read the new quota (to within a control
    period). Absent until one was timed (no meter, or no resize yet)."""
    predicted_completion_time: dt.datetime | None = None
    """When the application is predicted to finish at the current pace."""
    slack_seconds: float | None = None
    """Deadline minus predicted completion, in seconds (negative: predicted miss)."""
    core_seconds: float | None = None
    """Core-seconds allocated so far."""
    profile: str | None = None
    """Where the stage profile is stored (a ConfigMap name in a cluster, a file locally)."""
    driver_pod: str | None = None
    """Name of the driver pod."""
    control_state: dict[str, Any] | None = None
    """Serialised state of the control law, used to resume after an operator restart."""


class DeadlineJob(Resource[DeadlineJobSpec, DeadlineJobStatus]):
    """A Spark application that must finish by a deadline, with the fewest cores."""

    kind: Literal["DeadlineJob"] = KIND
    """``DeadlineJob``."""


def memory_overhead(
    conf: Mapping[str, str], role: Literal["driver", "executor"], default_factor: float
) -> tuple[int | None, float, int]:
    """Spark's memory overhead settings for the driver's or an executor's pod, as Spark reads them.

    Returns:
        ``spark.{role}.memoryOverhead`` in bytes (``None`` when unset); the factor of the heap
        (``spark.{role}.memoryOverheadFactor``, else ``spark.kubernetes.memoryOverheadFactor``,
        else ``default_factor``); and the least overhead in bytes (``spark.{role}.minMemoryOverhead``,
        else 384 MiB).
    """
    keys = (f"spark.{role}.memoryOverheadFactor", "spark.kubernetes.memoryOverheadFactor")
    try:
        factor = float(next((conf[key] for key in keys if conf.get(key)), default_factor))
    except ValueError:
        factor = default_factor
    minimum = spark_size(conf.get(f"spark.{role}.minMemoryOverhead"), "m")
    least = MIN_MEMORY_OVERHEAD if minimum is None else minimum
    return spark_size(conf.get(f"spark.{role}.memoryOverhead"), "m"), factor, least


def _heap_in(pod: int, overhead: int | None, factor: float, minimum: int) -> int:
    """The heap that, with Spark's overhead added, fills ``pod`` bytes."""
    if overhead is not None:
        return pod - overhead
    return min(pod - minimum, int(pod / (1 + factor)))
