"""Progress sensor over the REST API of a Spark driver (``/api/v1``).

Reads ``/applications`` (the application id), ``/applications/{id}/stages`` (every stage with
its status and task counts), ``/applications/{id}/stages/{stage}/{attempt}`` for the running
stages (tasks done per executor, from its ``executorSummary``) and
``/applications/{id}/executors`` (live executors). The running tasks' launch times give how long
each has run (``dynaspark.progress_share`` counts part of a task for it), on this process's clock:
a driver whose clock is off by more than a fraction of a task's time skews that part, never the
finished tasks. The stage detail asks for the running tasks
only (``taskStatus=RUNNING``, Spark ≥ 3.2; older drivers ignore it): with every task listed,
the answer grows by about 2 KB per finished task and the driver builds it every period, on the
cores the executors need (``bench/rest_polling.py``: 1 500 tasks into a stage, 2 957 KB and
25.5 ms of driver CPU per request, against 5.8 KB and 2.8 ms with the filter).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from dynaspark.observation import ProgressObservation, StageObservation, StageStatus

log = logging.getLogger(__name__)

# Per-executor task counts come from the stage's executorSummary, which ``details=true`` adds;
# the task list it adds too is cut to the running tasks.
STAGE_DETAIL_QUERY = "details=true&taskStatus=RUNNING"

_STATUSES: frozenset[str] = frozenset({"ACTIVE", "COMPLETE", "PENDING", "SKIPPED", "FAILED"})


def parse_spark_time(text: str | None) -> float | None:
    """Parse a Spark REST timestamp (``2024-05-01T10:00:00.123GMT``) into seconds since the epoch."""
    if not text:
        return None
    value = text.removesuffix("GMT").removesuffix("Z")
    try:
        parsed = dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f")
    except ValueError:
        return None
    return parsed.replace(tzinfo=dt.UTC).timestamp()


def running_task_seconds(tasks: Mapping[str, Any] | None, now_s: float) -> dict[str, tuple[float, ...]]:
    """How long each running task of a stage detail's ``tasks`` (by task id) has run at ``now_s``, per executor."""
    out: dict[str, list[float]] = {}
    for task in (tasks or {}).values():
        if not isinstance(task, Mapping) or task.get("status", "RUNNING") != "RUNNING":
            continue
        launched_s = parse_spark_time(task.get("launchTime"))
        if launched_s is None or task.get("executorId") is None:
            continue
        out.setdefault(str(task["executorId"]), []).append(max(0.0, now_s - launched_s))
    return {e: tuple(v) for e, v in out.items()}


def stage_from_rest(
    data: Mapping[str, Any],
    by_executor: Mapping[str, int] | None = None,
    task_seconds_by_executor: Mapping[str, float] | None = None,
    running_seconds_by_executor: Mapping[str, tuple[float, ...]] | None = None,
) -> StageObservation:
    """Turn one entry of ``/stages`` into a :class:`StageObservation`."""
    status = str(data.get("status", "PENDING"))
    return StageObservation(
        stage_id=int(data["stageId"]),
        name=str(data.get("name", "")),
        status=cast(StageStatus, status if status in _STATUSES else "PENDING"),
        num_tasks=int(data.get("numTasks", 0)),
        completed_tasks=int(data.get("numCompleteTasks", 0)),
        completed_tasks_by_executor=dict(by_executor or {}),
        input_records=int(data.get("inputRecords", 0)) + int(data.get("shuffleReadRecords", 0)),
        submission_time_s=parse_spark_time(data.get("submissionTime")),
        completion_time_s=parse_spark_time(data.get("completionTime")),
        task_seconds=float(data.get("executorRunTime", 0)) / 1000.0,
        task_seconds_by_executor=dict(task_seconds_by_executor or {}),
        running_task_seconds_by_executor=dict(running_seconds_by_executor or {}),
    )


def latest_attempts(stages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Keep only the latest attempt of each stage."""
    latest: dict[int, Mapping[str, Any]] = {}
    for stage in stages:
        sid = int(stage["stageId"])
        if sid not in latest or int(stage.get("attemptId", 0)) > int(latest[sid].get("attemptId", 0)):
            latest[sid] = stage
    return [latest[sid] for sid in sorted(latest)]


class SparkRestSensor:
    """Reads a running application's progress from its driver.

    Args:
        base_url: The driver's UI, e.g. ``http://127.0.0.1:4040``.
        timeout_s: Timeout of each request.
        clock: Seconds since the epoch (how long a running task has run is measured on it).
    """

    def __init__(self, base_url: str, timeout_s: float = 2.0, clock: Callable[[], float] = time.time) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.clock = clock
        self.application_id: str | None = None
        self.application_start_s: float | None = None

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.base_url}/api/v1{path}", timeout=self.timeout_s) as resp:
            return json.loads(resp.read())

    def read(self) -> ProgressObservation:
        """Return the application's progress now (empty while the driver does not answer)."""
        try:
            return self._read()
        except (OSError, urllib.error.URLError, ValueError, KeyError, TypeError) as exc:
            log.debug("driver REST API not answering: %s", exc)
            return ProgressObservation(application_id=self.application_id)

    def _read(self) -> ProgressObservation:
        if self.application_id is None:
            apps = self._get("/applications")
            if not apps:
                return ProgressObservation()
            self.application_id = str(apps[0]["id"])
            attempts = apps[0].get("attempts") or [{}]
            self.application_start_s = parse_spark_time(attempts[0].get("startTime"))
        app = f"/applications/{self.application_id}"
        raw_stages = latest_attempts(self._get(f"{app}/stages"))
        stages = []
        for raw in raw_stages:
            if raw.get("status") != "ACTIVE":
                stages.append(stage_from_rest(raw))
                continue
            detail = self._get(f"{app}/stages/{raw['stageId']}/{raw.get('attemptId', 0)}?{STAGE_DETAIL_QUERY}")
            summary = detail.get("executorSummary") or {}
            by_executor = {str(e): int(s.get("succeededTasks", 0)) for e, s in summary.items()}
            task_s = {str(e): float(s.get("taskTime", 0)) / 1000.0 for e, s in summary.items()}
            running_s = running_task_seconds(detail.get("tasks"), self.clock())
            stages.append(stage_from_rest(detail, by_executor, task_s, running_s))
        executors = [e for e in self._get(f"{app}/executors") if e.get("id") != "driver" and e.get("isActive", True)]
        ids = tuple(sorted((str(e["id"]) for e in executors), key=lambda x: (len(x), x)))
        running = {str(e["id"]): int(e["activeTasks"]) for e in executors if "activeTasks" in e}
        return ProgressObservation(
            stages=tuple(stages),
            executor_ids=ids,
            application_id=self.application_id,
            active_tasks_by_executor=running if len(running) == len(ids) else {},
        )
