"""Open-loop load generator for an inference endpoint on this machine.

``mlscale load URL --trace TRACE [--duration S]`` sends KServe v2 infer requests with
Poisson arrivals whose rate follows the trace (see :mod:`roma.traces` for the forms:
``const:20``, ``step:10:40@30``, ``ramp:5:50@60``, ``sin:20:10:60``, ``spike:10:60@20+5``,
``csv:FILE``). Open loop: a slow server does not slow the arrivals. Bounded in time
(``--duration``) and count (``--max-requests``, ``--max-in-flight``); loopback URLs only.
It prints (or writes with ``--json``) the percentile latencies and the SLO-violation ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import aiohttp
import numpy as np

from roma.latency import percentile
from roma.protocol import random_v2_request
from roma.traces import Trace, TraceError, parse_trace

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass
class LoadResult:
    """Outcome of a load run.

    Attributes:
        sent: Requests sent.
        latencies_s: Per answered request: (send time since start, latency).
        errors: Requests answered with an error status or not at all.
        dropped: Arrivals not sent because ``max_in_flight`` was reached (count as violations).
        duration_s: Length of the run.
    """

    sent: int = 0
    latencies_s: list[tuple[float, float]] = field(default_factory=list)
    errors: int = 0
    dropped: int = 0
    duration_s: float = 0.0

    def summary(self, slo_ms: float | None, slo_percentile: float | None = None) -> dict[str, Any]:
        """Percentiles (ms) and, given an SLO, the violation ratio (errors and drops count as violations).

        ``slo_percentile`` adds ``latency_ms_slo_percentile``: the latency at the SLO's own
        percentile (p99.9 for a p99.9 SLO), beside the fixed p50/p95/p99.
        """
        lat = [x for _, x in self.latencies_s]
        out: dict[str, Any] = {
            "requests": self.sent + self.dropped,
            "answered": len(lat),
            "errors": self.errors,
            "dropped": self.dropped,
            "duration_s": round(self.duration_s, 3),
            "offered_rps": (self.sent + self.dropped) / self.duration_s if self.duration_s else 0.0,
        }
        for p in (50, 95, 99):
            v = percentile(lat, p)
            out[f"latency_ms_p{p}"] = None if v is None else round(v * 1000, 3)
        if slo_percentile is not None:
            v = percentile(lat, slo_percentile)
            out["latency_ms_slo_percentile"] = None if v is None else round(v * 1000, 3)
        if slo_ms is not None:
            total = len(lat) + self.errors + self.dropped
            slow = sum(1 for x in lat if x * 1000 > slo_ms) + self.errors + self.dropped
            out["slo_ms"] = slo_ms
            out["slo_violation_ratio"] = slow / total if total else 0.0
        return out


def check_loopback(url: str) -> None:
    """Refuse any URL that does not point at this machine."""
    host = urlparse(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"{url}: the load generator only drives loopback endpoints (127.0.0.1, localhost)")


def arrival_times(trace: Trace, duration_s: float, max_requests: int, seed: int) -> list[float]:
    """Poisson arrival times following ``trace`` over ``[0, duration_s)`` (thinning), at most ``max_requests``."""
    rng = np.random.default_rng(seed)
    peak = trace.peak_rps(duration_s)
    if peak <= 0:
        return []
    times: list[float] = []
    t = 0.0
    while len(times) < max_requests:
        t += float(rng.exponential(1.0 / peak))
        if t >= duration_s:
            break
        if rng.random() * peak <= trace.rate_rps(t):
            times.append(t)
    return times


async def run_load(
    url: str,
    model: str,
    trace: Trace,
    duration_s: float,
    *,
    max_requests: int = 100_000,
    max_in_flight: int = 512,
    timeout_s: float = 30.0,
    seed: int = 0,
    on_tick: Callable[[float, LoadResult], None] | None = None,
) -> LoadResult:
    """Drive ``url`` (router or server base URL) with ``trace`` for ``duration_s`` seconds.

    Args:
        url: Base URL, e.g. ``http://127.0.0.1:8000``.
        model: Model name.
        trace: Offered load.
        duration_s: Seconds of arrivals (in-flight requests are then awaited, up to ``timeout_s``).
        max_requests: Hard bound on requests.
        max_in_flight: Arrivals beyond this many unanswered requests are dropped (counted).
        timeout_s: Per-request timeout.
        seed: Seed of the arrival process.
        on_tick: Called about once a second with (elapsed seconds, result so far).
    """
    check_loopback(url)
    base = url.rstrip("/")
    result = LoadResult()
    times = arrival_times(trace, duration_s, max_requests, seed)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max_in_flight), timeout=aiohttp.ClientTimeout(total=timeout_s)
    ) as session:
        async with session.get(f"{base}/v2/models/{model}") as resp:
            if resp.status != 200:
                raise RuntimeError(f"{base}/v2/models/{model}: HTTP {resp.status} {await resp.text()}")
            meta = await resp.json()
        shape = [d if d > 0 else None for d in meta["inputs"][0]["shape"][1:]]
        payload = json.dumps(random_v2_request(shape, seed)).encode()
        infer_url = f"{base}/v2/models/{model}/infer"
        in_flight: set[asyncio.Task[None]] = set()
        start = time.monotonic()

        async def one(sent_at: float) -> None:
            t0 = time.monotonic()
            try:
                async with session.post(infer_url, data=payload, headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    ok = r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                result.latencies_s.append((sent_at, time.monotonic() - t0))
            else:
                result.errors += 1

        next_tick = 1.0
        for at in times:
            delay = start + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elapsed = time.monotonic() - start
            if on_tick is not None and elapsed >= next_tick:
                on_tick(elapsed, result)
                next_tick = elapsed + 1.0
            if len(in_flight) >= max_in_flight:
                result.dropped += 1
                continue
            task = asyncio.get_running_loop().create_task(one(at))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            result.sent += 1
        rest = start + duration_s - time.monotonic()
        if rest > 0:
            await asyncio.sleep(rest)
        if in_flight:
            await asyncio.wait(in_flight, timeout=timeout_s)
        result.duration_s = duration_s
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mlscale load`` (and ``python -m roma.loadgen``)."""
    parser = argparse.ArgumentParser(
        prog="mlscale load",
        description=__doc__.split("\n\n")[0],
        epilog="Trace forms: "
        + ", ".join(
            [
                "const:RPS",
                "step:LOW:HIGH@T",
                "ramp:FROM:TO@T",
                "sin:MEAN:AMP:PERIOD",
                "spike:BASE:PEAK@T+W",
                "csv:FILE (t_seconds,rps)",
            ]
        ),
    )
    parser.add_argument("url", help="endpoint base URL on this machine, e.g. http://127.0.0.1:8000")
    parser.add_argument("--model", required=True, help="model name")
    parser.add_argument("--trace", required=True, help="load trace, e.g. step:10:40@30")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--slo-ms", type=float, help="latency objective for the violation ratio")
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--max-in-flight", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the summary to this file")
    args = parser.parse_args(argv)
    try:
        trace = parse_trace(args.trace)
        check_loopback(args.url)
    except (TraceError, ValueError) as exc:
        print(f"mlscale load: {exc}", file=sys.stderr)
        return 2
    if not 0 < args.duration <= 3600:
        print("mlscale load: --duration must be in (0, 3600] seconds", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(
            run_load(
                args.url,
                args.model,
                trace,
                args.duration,
                max_requests=args.max_requests,
                max_in_flight=args.max_in_flight,
                seed=args.seed,
            )
        )
    except (aiohttp.ClientError, RuntimeError, OSError) as exc:
        print(f"mlscale load: {exc}", file=sys.stderr)
        return 1
    summary = result.summary(args.slo_ms)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
