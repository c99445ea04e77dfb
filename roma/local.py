"""``mlscale run`` for an InferenceService: router, replicas in cgroups, load, loop, report.

Exit status 0 when the SLO held over the whole run: the share of requests slower than
``slo.latencyMs`` (errors and dropped arrivals count as slow) is at most what the percentile
allows, ``violation_ratio <= 1 - percentile/100`` — 5 % for a p95 SLO, i.e. the run's p95 is
within the bound. Otherwise 1; 2 when the service cannot run here (no cgroups without
``--uncontrolled``, a replica fails to start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlscale.builders import builder_problem
from mlscale.cgroups import CgroupUnavailableError, cgroup_unavailable_reason
from mlscale.local import LocalRunOptions
from mlscale.progress import LiveLine
from mlscale.report import write_report_json
from roma.api import ADMIN_TOKEN_FILE_ENV, InferenceService
from roma.law import start_law
from roma.loadgen import LoadResult, run_load
from roma.loop import control_period
from roma.policies import AllocationPolicy, MlscalePolicy
from roma.ports import LatencyObservation
from roma.replicas import LocalReplicaSet, ServerSpec
from roma.report_plot import plot_run
from roma.sensor import RouterLatencySensor
from roma.traces import parse_trace

#: Load used when neither ``--load`` nor the example names one.
DEFAULT_TRACE = "step:20:60@20"
DEFAULT_DURATION_S = 60.0
#: Annotation on an example resource naming its default trace.
TRACE_ANNOTATION = "mlscale.dev/load"

log = logging.getLogger(__name__)


def slo_threshold(percentile: float) -> float:
    """Largest violation ratio for which ``mlscale run`` reports the SLO as held (the percentile's promise)."""
    return 1.0 - percentile / 100.0


def build_policy(svc: InferenceService) -> MlscalePolicy:
    """The mlscale law configured from the resource's spec."""
    return MlscalePolicy(start_law(svc.spec))


async def _start_router(
    svc: InferenceService, window_s: float, log_dir: Path
) -> tuple[asyncio.subprocess.Process, str]:
    spec = svc.spec
    _make_dirs(log_dir)
    with (log_dir / "router.log").open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "roma.router",
            "--model",
            f"{spec.model.name}:{spec.slo.latency_ms}:{spec.slo.percentile}",
            "--window-s",
            str(window_s),
            "--alpha",
            str(spec.gpu.alpha),
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            start_new_session=True,
            # Here the replicas are registered over loopback without a token.
            env={k: v for k, v in os.environ.items() if k != ADMIN_TOKEN_FILE_ENV},
        )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60.0)
    if not line.startswith(b"LISTENING"):
        raise RuntimeError(f"the router did not start; see {log_dir / 'router.log'}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


async def serve_and_drive(
    svc: InferenceService,
    trace_spec: str,
    duration_s: float,
    report_dir: Path,
    *,
    controlled: bool,
    policy: AllocationPolicy | None = None,
    live: LiveLine | None = None,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Run the service under load with ``policy`` (default: the mlscale law); return the report."""
    spec = svc.spec
    trace = parse_trace(trace_spec)
    period_s = spec.control.period_seconds
    policy = policy or build_policy(svc)
    if controlled and (reason := cgroup_unavailable_reason()):
        raise CgroupUnavailableError(reason + " (use --uncontrolled to run without CPU limits)")
    router, router_url = await _start_router(svc, 2 * period_s, report_dir / "logs")
    server = ServerSpec(
        spec.model.name,
        spec.model.builder,
        spec.model.uri,
        spec.batching.max_batch_size,
        spec.batching.max_delay_ms,
        max(1, math.ceil(spec.cpu.cores_max)),
        cwd or Path.cwd(),
        report_dir / "logs",
    )
    samples: list[dict[str, Any]] = []
    capacity = float(os.cpu_count() or 1)
    contended_periods = 0
    replicas: LocalReplicaSet | None = None
    load_task: asyncio.Task[LoadResult] | None = None
    try:
        replicas = LocalReplicaSet(svc.metadata.name, server, router_url, controlled, spec.cpu.cores_max)
        initial = _initial_allocation(policy)
        await replicas.start(len(initial), spec.gpu.count)
        await replicas.set_cores(dict(zip(await replicas.replicas(), initial, strict=False)))
        sensor = RouterLatencySensor(router_url, spec.model.name)
        load_task = asyncio.get_running_loop().create_task(
            run_load(
                router_url, spec.model.name, trace, duration_s, timeout_s=max(10.0, 20 * spec.slo.latency_ms / 1000)
            )
        )
        sensor.started_s = time.monotonic()
        next_at = sensor.started_s + period_s
        while not load_task.done():
            await asyncio.wait({load_task}, timeout=max(0.0, next_at - time.monotonic()))
            if load_task.done():
                break
            next_at += period_s
            out = await control_period(
                sensor, replicas, policy, svc.metadata.name, capacity_cores=capacity, floor_cores=spec.cpu.cores_min
            )
            contended_periods += out.contended
            obs = out.observation
            cores = list(out.cores.values())
            samples.append(
                {
                    "t": round(obs.t_s, 3),
                    "rps": round(obs.requests_per_second, 3),
                    "latency_ms": None if obs.latency_s is None else round(obs.latency_s * 1000, 3),
                    "cores": cores,
                    "replicas": len(cores),
                    "serving": replicas.serving(),
                    "gpu_share": obs.gpu_share,
                }
            )
            if live is not None:
                lat = "-" if obs.latency_s is None else f"{obs.latency_s * 1000:.0f}"
                live.update(
                    f"{svc.metadata.name} t={obs.t_s:4.0f}s  {obs.requests_per_second:5.1f} rps  "
                    f"p{spec.slo.percentile:g}={lat} ms (SLO {spec.slo.latency_ms:g})  "
                    f"cores={'/'.join(f'{c:.1f}' for c in cores)}  replicas={len(cores)}"
                )
        result: LoadResult = load_task.result()
    finally:
        if load_task is not None and not load_task.done():
            load_task.cancel()
            await asyncio.gather(load_task, return_exceptions=True)
        if replicas is not None:
            await replicas.close()
        with contextlib.suppress(ProcessLookupError):
            router.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(router.wait(), 10.0)
        if router.returncode is None:
            router.kill()
            await router.wait()
    return _report(
        svc,
        trace=trace_spec,
        duration_s=duration_s,
        period_s=period_s,
        result=result,
        samples=samples,
        contended_periods=contended_periods,
    )


def _initial_allocation(policy: AllocationPolicy) -> list[float]:
    """The allocation a policy starts from (its answer to an empty first observation)."""
    if isinstance(policy, MlscalePolicy):
        return list(policy.law.allocation.cores)  # deciding would step the law
    return list(policy.decide(LatencyObservation(0.0, 0.0, None), []).cores)


def _make_dirs(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _report(
    svc: InferenceService,
    *,
    trace: str,
    duration_s: float,
    period_s: float,
    result: LoadResult,
    samples: list[dict[str, Any]],
    contended_periods: int,
) -> dict[str, Any]:
    spec = svc.spec
    summary = result.summary(spec.slo.latency_ms, spec.slo.percentile)
    core_seconds = sum(sum(s["cores"]) for s in samples) * period_s
    return {
        "kind": "InferenceService",
        "name": svc.metadata.name,
        "model": spec.model.name,
        "trace": trace,
        "duration_s": duration_s,
        "requests": summary["requests"],
        "answered": summary["answered"],
        "errors": summary["errors"],
        "dropped": summary["dropped"],
        "slo_ms": spec.slo.latency_ms,
        "slo_percentile": spec.slo.percentile,
        "latency_ms_p50": summary["latency_ms_p50"],
        "latency_ms_p95": summary["latency_ms_p95"],
        "latency_ms_p99": summary["latency_ms_p99"],
        "latency_ms_slo_percentile": summary["latency_ms_slo_percentile"],
        "slo_violation_ratio": summary["slo_violation_ratio"],
        "slo_violation_threshold": slo_threshold(spec.slo.percentile),
        "core_seconds": round(core_seconds, 3),
        "peak_cores": max((sum(s["cores"]) for s in samples), default=0.0),
        "peak_replicas": max((s["replicas"] for s in samples), default=0),
        "contended_periods": contended_periods,
        "samples": samples,
    }


def local_problem(svc: InferenceService, options: LocalRunOptions, cwd: Path) -> str | None:
    """What stops ``svc`` from running here, named by its field, before any process is started."""
    annotations = svc.metadata.annotations or {}
    if options.load:
        source, trace = "--load", options.load
    elif TRACE_ANNOTATION in annotations:
        source, trace = f"metadata.annotations[{TRACE_ANNOTATION}]", annotations[TRACE_ANNOTATION]
    else:
        source, trace = "the default trace", DEFAULT_TRACE
    try:
        parse_trace(trace)
    except ValueError as exc:
        return f"{source}: {exc}"
    model = svc.spec.model
    if model.builder is not None and (problem := builder_problem(model.builder, [str(cwd)])):
        return f"spec.model.builder: {problem}"
    if model.uri is not None and not (cwd / model.uri).exists():
        return f"spec.model.uri: {model.uri} does not exist (a relative path is taken from {cwd})"
    return None


def run_local(svc: InferenceService, options: LocalRunOptions) -> int:
    """Run ``svc`` on this machine under load and write ``report.json`` and ``report.png``.

    Returns:
        0 when the SLO held (see the module docstring), 1 when it did not, 2 when the
        service could not run here.
    """
    annotations = svc.metadata.annotations or {}
    trace = options.load or annotations.get(TRACE_ANNOTATION) or DEFAULT_TRACE
    duration_s = options.duration_s or DEFAULT_DURATION_S
    live = LiveLine(enabled=not options.quiet)
    cwd = Path.cwd()
    if problem := local_problem(svc, options, cwd):
        live.done(f"{svc.metadata.name}: cannot run: {problem}")
        return 2
    try:
        report = asyncio.run(
            serve_and_drive(
                svc, trace, duration_s, options.report_dir, controlled=not options.uncontrolled, live=live, cwd=cwd
            )
        )
    except CgroupUnavailableError as exc:
        live.done(f"{svc.metadata.name}: {exc}")
        return 2
    except (RuntimeError, ValueError, OSError) as exc:
        live.done(f"{svc.metadata.name}: cannot run: {exc}")
        return 2
    write_report_json(options.report_dir, report)
    plot_run(options.report_dir / "report.png", report["samples"], report["slo_ms"], f"{svc.metadata.name}: {trace}")
    held = slo_held(report)
    live.done(summary_line(svc.metadata.name, report, options.report_dir / "report.json"))
    return 0 if held else 1


def slo_held(report: Mapping[str, Any]) -> bool:
    """Whether the run kept its SLO: no more slow requests than its percentile allows."""
    return bool(report["slo_violation_ratio"] <= report["slo_violation_threshold"])


def summary_line(name: str, report: Mapping[str, Any], path: Path) -> str:
    """The last line of ``mlscale run``: the latency at the SLO's own percentile, the violations, the CPU."""
    return (
        f"{name}: {report['requests']} requests, p{report['slo_percentile']:g} "
        f"{report['latency_ms_slo_percentile']} ms vs SLO {report['slo_ms']:g} ms, violations "
        f"{report['slo_violation_ratio']:.3f} (≤ {report['slo_violation_threshold']:.2f} "
        f"{'held' if slo_held(report) else 'NOT held'}), {report['core_seconds']:.0f} core-s, "
        f"peak {report['peak_cores']:.1f} cores → {path}"
    )
