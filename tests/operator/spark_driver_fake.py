"""A tiny stand-in for a Spark driver's REST API (``/api/v1``) on 127.0.0.1, driven by the test.

It serves what :class:`dynaspark.spark_rest.SparkRestSensor` reads: the application, its
stages (with per-executor task counts for the active ones) and its executors. The test
starts stages and completes tasks; the operator's control loop reads them through
``MLSCALE_SPARK_UI_URL``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

APP_ID = "spark-app-0001"


def spark_time(moment: dt.datetime | None = None) -> str:
    """A time as Spark's REST API writes it (``2024-05-01T10:00:00.123GMT``)."""
    moment = moment or dt.datetime.now(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}GMT"


class FakeSparkDriver:
    """The driver's REST API with an application whose progress the test sets."""

    def __init__(self, executors: tuple[str, ...] = ("1", "2")) -> None:
        self.executors = list(executors)
        self.stages: dict[int, dict[str, Any]] = {}
        self.done: dict[int, dict[str, int]] = {}
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    def start_stage(self, stage_id: int, tasks: int, name: str = "map at job.py:10") -> None:
        """Submit a stage: it becomes ACTIVE with no task done."""
        self.stages[stage_id] = {
            "stageId": stage_id,
            "attemptId": 0,
            "name": name,
            "status": "ACTIVE",
            "numTasks": tasks,
            "numCompleteTasks": 0,
            "submissionTime": spark_time(),
        }
        self.done[stage_id] = {}

    def complete_tasks(self, stage_id: int, per_executor: dict[str, int]) -> None:
        """Finish more tasks of a stage, per executor."""
        done = self.done[stage_id]
        for executor, count in per_executor.items():
            done[executor] = done.get(executor, 0) + count
        self.stages[stage_id]["numCompleteTasks"] = sum(done.values())

    def complete_stage(self, stage_id: int) -> None:
        """Finish every task of a stage and mark it COMPLETE."""
        stage = self.stages[stage_id]
        left = stage["numTasks"] - stage["numCompleteTasks"]
        if left > 0:
            self.complete_tasks(stage_id, {self.executors[0]: left})
        stage["status"] = "COMPLETE"
        stage["completionTime"] = spark_time()

    async def start(self) -> str:
        """Serve on a free port of 127.0.0.1; return the base URL."""
        app = web.Application()
        app.router.add_get("/api/v1/applications", self._applications)
        app.router.add_get("/api/v1/applications/{app}/stages", self._stages)
        app.router.add_get("/api/v1/applications/{app}/stages/{stage}/{attempt}", self._stage)
        app.router.add_get("/api/v1/applications/{app}/executors", self._executors)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # bound port of port 0
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _applications(self, _: web.Request) -> web.Response:
        self.requests += 1
        return web.json_response([{"id": APP_ID, "name": "job", "attempts": [{"startTime": spark_time()}]}])

    async def _stages(self, _: web.Request) -> web.Response:
        return web.json_response([dict(s) for _, s in sorted(self.stages.items())])

    async def _stage(self, request: web.Request) -> web.Response:
        stage_id = int(request.match_info["stage"])
        summary = {e: {"succeededTasks": n} for e, n in self.done.get(stage_id, {}).items()}
        return web.json_response({**self.stages[stage_id], "executorSummary": summary})

    async def _executors(self, _: web.Request) -> web.Response:
        executors = [{"id": "driver", "isActive": True}]
        executors += [{"id": e, "isActive": True} for e in self.executors]
        return web.json_response(executors)
