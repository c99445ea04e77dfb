"""The final word on each stage: Spark's event log, read after the application ended.

The REST API is sampled once a period and goes away when the driver stops, so a short last
stage — or one that starts and ends between two samples — is never seen complete there. On one
machine the driver also writes its event log (``spark.eventLog.*``, uncompressed, one JSON
event per line, as Spark's history server reads it); each ``SparkListenerStageCompleted``
carries the stage's submission and completion times and its tasks' run time, and each
``SparkListenerTaskEnd`` the executor a task ran on, its run time and when it finished.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynaspark.observation import StageObservation

log = logging.getLogger(__name__)

EVENT_LOG_FOLDER = "events"
"""Folder (under the run's work folder) the driver writes its event log into."""


def event_log_conf(folder: Path) -> dict[str, str]:
    """Spark configuration that writes the event log as plain JSON lines into ``folder``."""
    return {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": folder.resolve().as_uri(),
        "spark.eventLog.compress": "false",
        "spark.eventLog.rolling.enabled": "false",
    }


def _accumulated(stage_info: Mapping[str, Any], name: str) -> float:
    for acc in stage_info.get("Accumulables") or ():
        if acc.get("Name") == name:
            try:
                return float(acc.get("Value", 0))
            except (TypeError, ValueError):
                return 0.0
    return 0.0


@dataclass
class _Tasks:
    """What the ``SparkListenerTaskEnd`` events of one stage attempt said."""

    seconds_by_executor: dict[str, float] = field(default_factory=dict)
    finish_times_s: list[float] = field(default_factory=list)


def stage_from_event(
    stage_info: Mapping[str, Any],
    task_seconds_by_executor: Mapping[str, float] | None = None,
    task_finish_times_s: Sequence[float] = (),
) -> StageObservation | None:
    """Turn the ``Stage Info`` of a ``SparkListenerStageCompleted`` event into a completed stage."""
    submitted = stage_info.get("Submission Time")
    completed = stage_info.get("Completion Time")
    if submitted is None or completed is None:
        return None
    tasks = int(stage_info.get("Number of Tasks", 0))
    records = _accumulated(stage_info, "internal.metrics.input.recordsRead") + _accumulated(
        stage_info, "internal.metrics.shuffle.read.recordsRead"
    )
    return StageObservation(
        stage_id=int(stage_info["Stage ID"]),
        name=str(stage_info.get("Stage Name", "")),
        status="FAILED" if stage_info.get("Failure Reason") else "COMPLETE",
        num_tasks=tasks,
        completed_tasks=tasks if not stage_info.get("Failure Reason") else 0,
        input_records=int(records),
        submission_time_s=float(submitted) / 1000.0,
        completion_time_s=float(completed) / 1000.0,
        task_seconds=_accumulated(stage_info, "internal.metrics.executorRunTime") / 1000.0,
        task_seconds_by_executor=dict(task_seconds_by_executor or {}),
        task_finish_times_s=tuple(sorted(task_finish_times_s)),
    )


def read_completed_stages(folder: Path) -> tuple[StageObservation, ...]:
    """The latest attempt of every stage that completed, from the event log(s) in ``folder``.

    Returns nothing when there is no log; a line that is not JSON (a log cut short) is skipped.
    """
    latest: dict[int, tuple[int, StageObservation]] = {}
    tasks: dict[tuple[int, int], _Tasks] = {}
    files = sorted(p for p in folder.glob("*") if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []
    for path in files:
        try:
            with path.open(encoding="utf-8", errors="replace") as lines:  # line by line: logs can be large
                for line in lines:
                    _read_event(line, tasks, latest)
        except OSError as exc:
            log.debug("cannot read event log %s: %s", path, exc)
    return tuple(latest[sid][1] for sid in sorted(latest))


def _read_event(
    line: str, tasks: dict[tuple[int, int], _Tasks], latest: dict[int, tuple[int, StageObservation]]
) -> None:
    """Take one line of the event log: a task's end, a stage's completion, or nothing of ours."""
    if '"SparkListenerTaskEnd"' in line:
        _add_task(line, tasks)
        return
    if '"SparkListenerStageCompleted"' not in line:
        return
    try:
        info = json.loads(line)["Stage Info"]
        attempt = int(info.get("Stage Attempt ID", 0))
        ended = tasks.get((int(info["Stage ID"]), attempt), _Tasks())
        stage = stage_from_event(info, ended.seconds_by_executor, ended.finish_times_s)
    except (ValueError, KeyError, TypeError):
        return
    if stage is not None and (stage.stage_id not in latest or attempt >= latest[stage.stage_id][0]):
        latest[stage.stage_id] = (attempt, stage)


def _add_task(line: str, tasks: dict[tuple[int, int], _Tasks]) -> None:
    """Add one ``SparkListenerTaskEnd`` event to its stage attempt: run time per executor, finish time."""
    try:
        event = json.loads(line)
        key = (int(event["Stage ID"]), int(event.get("Stage Attempt ID", 0)))
        info = event["Task Info"]
        executor = str(info["Executor ID"])
        run_s = float((event.get("Task Metrics") or {}).get("Executor Run Time", 0)) / 1000.0
        finished = info.get("Finish Time")
        succeeded = (event.get("Task End Reason") or {}).get("Reason", "Success") == "Success" and not info.get(
            "Failed", False
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return
    ended = tasks.setdefault(key, _Tasks())
    ended.seconds_by_executor[executor] = ended.seconds_by_executor.get(executor, 0.0) + run_s
    if succeeded and isinstance(finished, int | float) and finished > 0:
        ended.finish_times_s.append(float(finished) / 1000.0)
