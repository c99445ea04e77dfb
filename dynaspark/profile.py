"""The stage profile of a Spark application: what each stage costs at nominal cores.

A profile is recorded by the first run of an application (see :mod:`dynaspark.profiler`)
and read by later runs to plan per-stage deadlines and to predict whether the deadline can
still be met. Stages are keyed by Spark's stage id, which the DAG scheduler hands out in
the same order for the same program and arguments.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROFILE_FORMAT_VERSION = 3
"""Version 2 added each stage's latency and takes a last stage's times from the event log;
version 3 each stage's progress curve."""

READABLE_FORMAT_VERSIONS = frozenset({1, 2, 3})
"""Formats this version reads. An older profile plans as before (version 1: no latencies;
versions 1 and 2: tasks done at an even pace) and is replaced by the next successful run's
profile (see :attr:`ApplicationProfile.outdated`)."""

PROGRESS_CURVE_POINTS = 10
"""A progress curve holds the share of a stage's tasks done at each tenth of its duration."""


def rising_line_at(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """The value at ``x`` of the line through the points ``(xs, ys)`` (both ascending).

    Where several points share an abscissa, the highest of them counts there.
    """
    value = 0.0
    for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:], strict=False):
        if x1 <= x:
            value = max(value, y1)
        elif x0 <= x:
            value = max(value, y0 + (y1 - y0) * (x - x0) / (x1 - x0))
            break
        else:
            break
    return value


def first_reaching(xs: Sequence[float], ys: Sequence[float], y: float) -> float:
    """The first ``x`` at which the rising line through ``(xs, ys)`` reaches ``y``.

    Its last abscissa when it never does; its first when it starts there.
    """
    if y <= ys[0]:
        return xs[0]
    for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:], strict=False):
        if y1 >= y:
            return x0 if y1 <= y0 else x0 + (x1 - x0) * (y - y0) / (y1 - y0)
    return xs[-1]


@dataclass(frozen=True)
class StageProfile:
    """One stage as the profiling run saw it.

    Attributes:
        stage_id: Spark's stage id (its ordinal in the application's DAG).
        name: Spark's stage name, e.g. ``reduceByKey at pagerank.py:41``.
        tasks: Number of tasks.
        input_records: Records the stage read (input plus shuffle read).
        duration_s: Wall time of the stage at the profile's nominal cores.
        idle_before_s: Wall time before the stage was submitted during which no stage ran
            (driver work, job scheduling, the application's start-up for the first stage).
        latency_s: The part of ``duration_s`` that executor cores do not shorten: the time the
            stage ran while its task slots were not running its tasks (task launches, results
            travelling back, a short stage's round trips). Included in ``duration_s``.
        progress_curve: The share of its tasks done at 1/N, 2/N, … (N−1)/N of its duration,
            N − 1 values (``PROGRESS_CURVE_POINTS - 1`` when recorded): the pace its tasks ended
            at. A stage whose first tasks also start its executors' Python workers ends few
            tasks early and many late. Empty: an even pace.
    """

    stage_id: int
    name: str
    tasks: int
    input_records: int
    duration_s: float
    idle_before_s: float = 0.0
    latency_s: float = 0.0
    progress_curve: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        """Keep the latency within the duration it is part of, and the curve within [0, 1] and rising."""
        object.__setattr__(self, "latency_s", min(max(0.0, self.latency_s), max(0.0, self.duration_s)))
        curve: list[float] = []
        for value in self.progress_curve:
            curve.append(max(curve[-1] if curve else 0.0, min(1.0, max(0.0, float(value)))))
        object.__setattr__(self, "progress_curve", tuple(curve))

    def planned_progress(self, time_fraction: float) -> float:
        """The share of its tasks done after ``time_fraction`` of its duration, along its curve.

        Between the curve's points progress is taken to grow evenly; with no curve it is
        ``time_fraction`` itself.
        """
        t = min(1.0, max(0.0, time_fraction))
        if not self.progress_curve:
            return t
        ys = (0.0, *self.progress_curve, 1.0)
        return rising_line_at([i / (len(ys) - 1) for i in range(len(ys))], ys, t)

    def time_fraction_done(self, progress: float, *, tasks: int, elapsed_fraction: float) -> float:
        """How much of its duration a stage has behind it, with ``progress`` of its tasks done.

        With no curve that is ``progress`` itself. Along a curve, ``progress`` (known to one
        task in ``tasks``) places the stage between the time the curve reaches it and the time
        it reaches one task more; within that span, where the stage is comes from how long it
        has run (``elapsed_fraction`` of its duration). So a stage whose first tasks take long
        to end, as profiled, is not taken to be at its start for all that time.
        """
        done = min(1.0, max(0.0, progress))
        if not self.progress_curve:
            return done
        ys = (0.0, *self.progress_curve, 1.0)
        xs = [i / (len(ys) - 1) for i in range(len(ys))]
        earliest = first_reaching(xs, ys, done)
        latest = first_reaching(xs, ys, done + 1.0 / max(1, tasks)) if done < 1.0 else 1.0
        return min(max(earliest, latest), max(earliest, elapsed_fraction))

    @property
    def scalable_s(self) -> float:
        """The part of ``duration_s`` that scales with the cores (the tasks' work)."""
        return self.duration_s - self.latency_s

    @property
    def scalable_fraction(self) -> float:
        """``scalable_s`` over ``duration_s`` (1 for a stage of no measured duration)."""
        return self.scalable_s / self.duration_s if self.duration_s > 0 else 1.0

    def duration_at_s(self, scale: float) -> float:
        """Wall time of the stage with the cores multiplied by ``1 / scale`` (``scale = 1``: nominal)."""
        return self.latency_s + self.scalable_s * scale

    def to_dict(self) -> dict[str, Any]:
        """Return the stage as a plain, JSON-ready dict."""
        return {
            "stageId": self.stage_id,
            "name": self.name,
            "tasks": self.tasks,
            "inputRecords": self.input_records,
            "durationSeconds": round(self.duration_s, 3),
            "idleBeforeSeconds": round(self.idle_before_s, 3),
            "latencySeconds": round(self.latency_s, 3),
            "progressCurve": [round(v, 3) for v in self.progress_curve],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageProfile:
        """Build a stage from :meth:`to_dict`'s output."""
        return cls(
            stage_id=int(data["stageId"]),
            name=str(data.get("name", "")),
            tasks=int(data["tasks"]),
            input_records=int(data.get("inputRecords", 0)),
            duration_s=float(data["durationSeconds"]),
            idle_before_s=float(data.get("idleBeforeSeconds", 0.0)),
            latency_s=float(data.get("latencySeconds", 0.0)),
            progress_curve=tuple(float(v) for v in data.get("progressCurve") or ()),
        )


@dataclass(frozen=True)
class ApplicationProfile:
    """All stages of one application, ordered by stage id.

    Attributes:
        nominal_cores: Total executor cores the durations are normalised to
            (instances × coresMax of the profiling run).
        stages: The stages in stage-id order (skipped stages left out).
        tail_s: Wall time after the last stage until the application ended.
        source: Free text saying where the profile came from (application file, arguments).
        format_version: The format it was read in (:data:`PROFILE_FORMAT_VERSION` when new).
    """

    nominal_cores: float
    stages: tuple[StageProfile, ...]
    tail_s: float = 0.0
    source: str = ""
    format_version: int = field(default=PROFILE_FORMAT_VERSION, compare=False)
    _by_id: dict[int, StageProfile] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Order the stages by id and index them."""
        ordered = tuple(sorted(self.stages, key=lambda s: s.stage_id))
        object.__setattr__(self, "stages", ordered)
        object.__setattr__(self, "_by_id", {s.stage_id: s for s in ordered})

    def stage(self, stage_id: int) -> StageProfile | None:
        """Return the profiled stage with that id, or ``None`` when the profile lacks it."""
        return self._by_id.get(stage_id)

    def stages_after(self, stage_id: int) -> tuple[StageProfile, ...]:
        """Return the profiled stages that come after ``stage_id``."""
        return tuple(s for s in self.stages if s.stage_id > stage_id)

    @property
    def outdated(self) -> bool:
        """Whether it was written in an older format, which a new run's profile should replace."""
        return self.format_version < PROFILE_FORMAT_VERSION

    @property
    def total_duration_s(self) -> float:
        """Wall time of the whole application at nominal cores, idle times included."""
        return sum(s.duration_s + s.idle_before_s for s in self.stages) + self.tail_s

    def to_dict(self) -> dict[str, Any]:
        """Return the profile as a plain, JSON-ready dict."""
        return {
            "formatVersion": PROFILE_FORMAT_VERSION,
            "nominalCores": self.nominal_cores,
            "tailSeconds": round(self.tail_s, 3),
            "source": self.source,
            "stages": [s.to_dict() for s in self.stages],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApplicationProfile:
        """Build a profile from :meth:`to_dict`'s output.

        Raises:
            ValueError: when the data is not a profile of a format this version reads.
        """
        version = data.get("formatVersion")
        if version not in READABLE_FORMAT_VERSIONS:
            raise ValueError(
                f"unsupported stage profile format {version!r} (expected one of {sorted(READABLE_FORMAT_VERSIONS)})"
            )
        return cls(
            nominal_cores=float(data["nominalCores"]),
            stages=tuple(StageProfile.from_dict(s) for s in data["stages"]),
            tail_s=float(data.get("tailSeconds", 0.0)),
            source=str(data.get("source", "")),
            format_version=int(version),
        )

    def save(self, path: Path) -> Path:
        """Write the profile as JSON (parent folders created) and return the path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> ApplicationProfile:
        """Read a profile written by :meth:`save`.

        Raises:
            OSError: when the file cannot be read.
            ValueError: when it is not a profile.
        """
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a stage profile")
        return cls.from_dict(data)
