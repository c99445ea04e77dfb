"""The CPU meter an executor pod runs, read the way the operator reads it (real cgroups, real HTTP)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from controllers.executor_cpu import PodCpuMeter
from controllers.executor_pods import ExecutorPod
from controllers.sparkpods import METER_DIR, METER_KEY, executor_pod_template, template_configmap
from dynaspark.api import DeadlineJob
from dynaspark.observation import ExecutorCpu
from mlscale import cpu_meter
from mlscale.cgroups import cgroup_unavailable_reason
from mlscale.cpu_meter import CpuCounters
from tests.metered_executors import NAP, SPIN, MeteredExecutor, free_port, metered_executors
from tests.operator.deadlinejob_helpers import job

pytestmark = pytest.mark.skipif(cgroup_unavailable_reason() is not None, reason=str(cgroup_unavailable_reason()))


PORT = free_port()
HOSTS = {"1": "127.0.0.2", "2": "127.0.0.3"}  # two pod IPs: one port, as every executor pod has


@pytest.fixture
def executors() -> Iterator[dict[str, MeteredExecutor]]:
    with metered_executors({"1": SPIN, "2": NAP}, HOSTS, PORT, 0.3, "meter-it") as started:
        yield started


def test_the_operator_reads_what_each_executor_used_and_whether_it_ran_out_of_quota(
    executors: dict[str, MeteredExecutor],
) -> None:
    pods = {e: ExecutorPod(e, f"job-exec-{e}", "executor", None, 0.3, HOSTS[e]) for e in executors}
    meter = PodCpuMeter(PORT)

    async def read_twice() -> tuple[dict[str, ExecutorCpu], dict[str, ExecutorCpu]]:
        async with aiohttp.ClientSession() as http:
            first = await meter.usage(http, pods, time.monotonic(), timeout_s=2)
            await asyncio.sleep(1.5)
            return first, await meter.usage(http, pods, time.monotonic(), timeout_s=2)

    first, usage = asyncio.run(read_twice())
    assert first == {}  # the first read starts the interval
    # The spinning one used its 0.3 core and ran out of quota in nearly every 100 ms period; the
    # napping one used a few hundredths and never did: the law caps only the latter at its use.
    assert usage["1"].used_cores == pytest.approx(0.3, abs=0.06)
    assert usage["1"].throttled_share is not None
    assert usage["1"].throttled_share > 0.8
    assert usage["2"].used_cores < 0.15
    assert usage["2"].throttled_share is not None
    assert usage["2"].throttled_share < 0.2
    # The quota each runs under, read from the kernel: what the kubelet applied.
    assert meter.quota_cores == {"1": pytest.approx(0.3), "2": pytest.approx(0.3)}


def test_a_resize_is_timed_between_the_last_reading_under_the_old_quota_and_the_first_under_the_new(
    executors: dict[str, MeteredExecutor],
) -> None:
    pods = {"2": ExecutorPod("2", "job-exec-2", "executor", None, 0.3, HOSTS["2"])}
    meter = PodCpuMeter(PORT)
    kubelet = executors["2"].group  # the stand-in applies a resize by writing its cgroup's quota

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            # The clock is the argument: readings at 10.0, 10.5, 11.0 and 11.5 s, two periods of 0.5 s.
            await meter.usage(http, pods, 10.0, timeout_s=2)
            meter.expect({"2": 0.2}, 10.1)
            await meter.usage(http, pods, 10.5, timeout_s=2)  # still 0.3: not applied 0.4 s after
            await meter.usage(http, pods, 11.0, timeout_s=2)  # nor 0.9 s after
            kubelet.set_cores(0.2)
            await meter.usage(http, pods, 11.5, timeout_s=2)
            # The next one is applied before the first reading after it.
            meter.expect({"2": 0.25}, 11.6)
            kubelet.set_cores(0.25)
            await meter.usage(http, pods, 12.1, timeout_s=2)

    asyncio.run(scenario())
    # Between 0.9 and 1.4 s for the first (two readings missed it), at most 0.5 s for the second.
    first, second = meter.resize_timings
    assert (first.missed_readings, first.at_least_s, first.at_most_s) == (2, pytest.approx(0.9), pytest.approx(1.4))
    assert (second.missed_readings, second.at_least_s, second.at_most_s) == (0, 0.0, pytest.approx(0.5))
    assert meter.resize_latency_s == pytest.approx(0.95)


def test_a_meter_that_does_not_answer_is_left_alone_for_a_while() -> None:
    pod = ExecutorPod("1", "job-exec-1", "executor", None, 1.0, "127.0.0.1")
    meter = PodCpuMeter(free_port())  # nothing listens there: an image without python3

    async def read(now_s: float) -> int:
        async with aiohttp.ClientSession() as http:
            calls = 0
            original = meter._read

            async def counted(*args: object) -> object:
                nonlocal calls
                calls += 1
                return await original(*args)  # type: ignore[arg-type]

            meter._read = counted  # type: ignore[method-assign]
            assert await meter.usage(http, {"1": pod}, now_s, timeout_s=0.5) == {}
            return calls

    assert [asyncio.run(read(t)) for t in (0.0, 0.2, 0.4)] == [1, 1, 1]
    # Three failures in a row: not asked again for 30 s, so a dead meter costs no period a wait.
    assert asyncio.run(read(0.6)) == 0
    assert asyncio.run(read(29.0)) == 0
    assert asyncio.run(read(31.0)) == 1


def test_the_executor_container_starts_the_meter_then_hands_sparks_arguments_to_the_entrypoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The image's entrypoint: records its arguments, then waits for the meter, as a JVM would run.
    entrypoint = tmp_path / "entrypoint.sh"
    record = tmp_path / "args"
    entrypoint.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > {record}\n'
        "for i in $(seq 100); do\n"
        f"  python3 -c \"import urllib.request as u; u.urlopen('http://127.0.0.1:$METER_PORT/cpu', timeout=1)\" "
        f"2>/dev/null && echo answered >> {record} && exit 0\n"
        "  sleep 0.1\n"
        "done\n"
        "exit 1\n"
    )
    entrypoint.chmod(0o755)
    port = free_port()
    monkeypatch.setenv("MLSCALE_SPARK_ENTRYPOINT", str(entrypoint))
    monkeypatch.setenv("MLSCALE_EXECUTOR_CPU_METER_PORT", str(port))
    deadline_job = DeadlineJob.model_validate(job())
    container = executor_pod_template(deadline_job)["spec"]["containers"][0]
    # The ConfigMap's file where the pod mounts it: here a folder of the test's own.
    meter_dir = tmp_path / "cpu-meter"
    meter_dir.mkdir()
    (meter_dir / METER_KEY).write_text(template_configmap(deadline_job)["data"][METER_KEY])
    command = [part.replace(METER_DIR, str(meter_dir)) for part in container["command"]]
    # Spark appends its own arguments to the container's: `executor`.
    process = subprocess.Popen(
        [*command, "executor"], env={**os.environ, "METER_PORT": str(port)}, start_new_session=True
    )
    try:
        assert process.wait(timeout=30) == 0
    finally:
        # In a pod the container's end stops the meter; here its process group is killed.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert record.read_text().split("\n")[:2] == ["executor", "answered"]


def test_with_the_meter_off_the_executor_runs_the_images_own_entrypoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSCALE_EXECUTOR_CPU_METER_PORT", "0")
    deadline_job = DeadlineJob.model_validate(job())
    template = executor_pod_template(deadline_job)
    assert "command" not in template["spec"]["containers"][0]
    assert "volumes" not in template["spec"]
    assert METER_KEY not in template_configmap(deadline_job)["data"]


@pytest.mark.parametrize("value", ["http", "70000"])
def test_a_bad_meter_port_names_the_setting_and_the_fix(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MLSCALE_EXECUTOR_CPU_METER_PORT", value)
    with pytest.raises(ValueError, match=r"MLSCALE_EXECUTOR_CPU_METER_PORT=.*or 0 to turn the meter off"):
        executor_pod_template(DeadlineJob.model_validate(job()))


def _meter_process(port: int, python: str = sys.executable, host: str = "127.0.0.1") -> subprocess.Popen[bytes]:
    """The meter as a pod runs it, by ``python`` (``host`` empty: every address, IPv6 and IPv4)."""
    host_args = ["--host", host] if host else []
    return subprocess.Popen(
        [python, "-I", str(Path(cpu_meter.__file__)), *host_args, "--port", str(port)],
        stderr=subprocess.DEVNULL,
    )


def test_the_meter_answers_on_the_pods_ipv4_and_ipv6_addresses() -> None:
    port = free_port()
    meter = _meter_process(port, host="")
    pods = {
        "4": ExecutorPod("4", "job-exec-4", "executor", None, 1.0, "127.0.0.1"),
        "6": ExecutorPod("6", "job-exec-6", "executor", None, 1.0, "::1"),
    }
    reader = PodCpuMeter(port)

    async def read() -> dict[str, float | None]:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):  # until the meter listens
                await reader.usage(http, pods, time.monotonic(), timeout_s=1)
                if set(reader.quota_cores) == set(pods):
                    break
                await asyncio.sleep(0.1)
        return dict(reader.quota_cores)

    try:
        assert set(asyncio.run(read())) == {"4", "6"}
    finally:
        meter.kill()
        meter.wait()


def test_a_reading_after_the_meter_was_away_starts_a_new_interval() -> None:
    port = free_port()
    pod = ExecutorPod("1", "job-exec-1", "executor", None, 1.0, "127.0.0.1")
    reader = PodCpuMeter(port)

    async def read(http: aiohttp.ClientSession) -> dict[str, ExecutorCpu]:
        return await reader.usage(http, {"1": pod}, time.monotonic(), timeout_s=1)

    async def until_it_answers(http: aiohttp.ClientSession) -> dict[str, ExecutorCpu]:
        for _ in range(100):
            first = await read(http)
            if "1" in reader.quota_cores:
                return first
            await asyncio.sleep(0.1)
        raise AssertionError("the meter did not answer")

    async def scenario() -> list[dict[str, ExecutorCpu]]:
        results = []
        async with aiohttp.ClientSession() as http:
            meter = _meter_process(port)
            try:
                await until_it_answers(http)
                await asyncio.sleep(0.2)
                results.append(await read(http))  # an interval: a figure
            finally:
                meter.kill()
                meter.wait()
            results.append(await read(http))  # away: nothing, and its enforced quota is forgotten
            assert "1" not in reader.quota_cores
            meter = _meter_process(port)
            try:
                results.append(await until_it_answers(http))  # back: a new interval starts
                await asyncio.sleep(0.2)
                results.append(await read(http))
            finally:
                meter.kill()
                meter.wait()
        return results

    after_a_period, away, back, next_period = asyncio.run(scenario())
    assert set(after_a_period) == {"1"}
    assert away == {}
    # Not one figure averaged over the gap, which can be far longer than a control period.
    assert back == {}
    assert set(next_period) == {"1"}


def test_a_pod_that_is_not_running_yet_is_not_asked() -> None:
    pending = ExecutorPod("1", "job-exec-1", "executor", None, 1.0, "127.0.0.1", running=False)
    reader = PodCpuMeter(free_port())

    async def read() -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(5):
                await reader.usage(http, {"1": pending}, time.monotonic(), timeout_s=0.2)

    asyncio.run(read())
    # Its image may still be pulling: no failure counted, so no backoff once it runs.
    assert reader._failures == {}


def _python38() -> str | None:
    """A Python 3.8 interpreter of this machine (pyenv's own, not its shim), if there is one."""
    pyenv = sorted(Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")).glob("versions/3.8*/bin/python3.8"))
    if pyenv:
        return str(pyenv[-1])
    found = shutil.which("python3.8")
    return found if found is not None and "shims" not in found else None


PYTHON38 = _python38()


@pytest.mark.skipif(PYTHON38 is None, reason="no python3.8 on this machine")
def test_the_meter_runs_on_python_3_8_as_spark_images_carry() -> None:
    assert PYTHON38 is not None
    port = free_port()
    meter = _meter_process(port, PYTHON38)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/cpu", timeout=2) as response:
                    counters = CpuCounters.from_dict(json.load(response))
                break
            except OSError:
                assert meter.poll() is None, "the meter exited under Python 3.8"
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        meter.kill()
        meter.wait()
    assert counters.usage_seconds is None or counters.usage_seconds > 0


def test_an_image_without_the_entrypoint_stops_with_the_setting_to_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSCALE_SPARK_ENTRYPOINT", str(tmp_path / "no such entrypoint"))
    command = executor_pod_template(DeadlineJob.model_validate(job()))["spec"]["containers"][0]["command"]
    done = subprocess.run([*command, "executor"], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 127
    assert "no entrypoint at" in done.stderr
    assert "MLSCALE_SPARK_ENTRYPOINT" in done.stderr
    assert "spec.executors.cpuMeter: false" in done.stderr


def test_a_job_can_run_its_executors_without_the_meter() -> None:
    body = job()
    body["spec"]["executors"]["cpuMeter"] = False
    deadline_job = DeadlineJob.model_validate(body)
    assert "command" not in executor_pod_template(deadline_job)["spec"]["containers"][0]
    assert METER_KEY not in template_configmap(deadline_job)["data"]
