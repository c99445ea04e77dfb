"""Benchmark: what one look at a running stage costs the Spark driver.

The DeadlineJob loop reads a running stage's detail from the driver's REST API every control
period, for its per-executor summary. Spark lists the stage's tasks in that answer too: with
``details=true`` alone every task so far, with ``taskStatus=RUNNING`` (what the sensor asks,
:data:`dynaspark.spark_rest.STAGE_DETAIL_QUERY`) only those running. The driver builds the
answer on the cores the executors need (on one machine it shares them).

A local driver (``local[2]``, C1 only as ``mlscale run`` starts it) runs one stage of many short
tasks; as it goes, each request below is sent ``--requests`` times in a row and measured:
the driver JVM's CPU per request (``/proc``), the wall time and the answer's size.

    .venv/bin/python bench/rest_polling.py [--tasks 3000] [--requests 40]
    .venv/bin/python bench/rest_polling.py --table     # the README's table from the JSON

writes bench/results/rest_polling.json and bench/results/rest_polling.png. Needs Java 17.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dynaspark.jvm import DRIVER_JAVA_OPTIONS, QUICK_COMPILATION  # noqa: E402 - after the path set-up above
from dynaspark.spark_rest import STAGE_DETAIL_QUERY  # noqa: E402

RESULTS = REPO / "bench" / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TASK_SECONDS = 0.03


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _java_child() -> int:
    """The driver JVM: the java process this Python process started."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == me and b"java" in cmdline:
            return int(entry.name)
    raise RuntimeError("no driver JVM found among this process's children")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        body: bytes = resp.read()
        return body


def measure(tasks: int, requests: int, checkpoints: list[float]) -> list[dict[str, Any]]:
    from pyspark.sql import SparkSession

    port = _free_port()
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("rest-polling")
        .config("spark.ui.port", str(port))
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config(DRIVER_JAVA_OPTIONS, QUICK_COMPILATION)
        .getOrCreate()
    )
    sc = spark.sparkContext
    jvm = _java_child()
    base = f"http://127.0.0.1:{port}/api/v1"
    job = threading.Thread(
        target=lambda: sc.parallelize(range(tasks), tasks).map(lambda x: time.sleep(TASK_SECONDS) or x).count(),
        daemon=True,
    )
    job.start()
    rows: list[dict[str, Any]] = []
    try:
        app = ""
        for share in checkpoints:
            want = int(share * tasks)
            deadline = time.monotonic() + 10 * tasks * TASK_SECONDS
            while True:
                if not app:
                    apps = json.loads(_get(f"{base}/applications"))
                    app = str(apps[0]["id"]) if apps else ""
                stages = json.loads(_get(f"{base}/applications/{app}/stages")) if app else []
                active = [s for s in stages if s.get("status") == "ACTIVE"]
                if active and int(active[0].get("numCompleteTasks", 0)) >= want:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the stage did not reach {want} tasks done in time")
                time.sleep(0.2)
            stage = f"{base}/applications/{app}/stages/{active[0]['stageId']}/{active[0].get('attemptId', 0)}"
            paths = {
                "stage detail, every task": f"{stage}?details=true",
                "stage detail, running tasks": f"{stage}?{STAGE_DETAIL_QUERY}",
                "stages": f"{base}/applications/{app}/stages",
                "executors": f"{base}/applications/{app}/executors",
            }
            done = int(json.loads(_get(f"{stage}?details=false"))["numCompleteTasks"])
            for name, url in paths.items():
                cpu0, wall0, size = _cpu_s(jvm), time.monotonic(), 0
                for _ in range(requests):
                    size = len(_get(url))
                rows.append(
                    {
                        "request": name,
                        "tasks_done": done,
                        "driver_cpu_ms": round(1000 * (_cpu_s(jvm) - cpu0) / requests, 2),
                        "wall_ms": round(1000 * (time.monotonic() - wall0) / requests, 2),
                        "bytes": size,
                    }
                )
                print(
                    f"  {done:5d} tasks done | {name:28s} {rows[-1]['driver_cpu_ms']:7.1f} ms driver CPU, "
                    f"{rows[-1]['wall_ms']:7.1f} ms, {size:9d} bytes",
                    flush=True,
                )
    finally:
        job.join(timeout=10 * tasks * TASK_SECONDS)
        spark.stop()
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| tasks done | request | driver CPU ms / request | wall ms / request | answer KB |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        size_kb = r["bytes"] / 1000
        lines.append(
            f"| {r['tasks_done']} | {r['request']} | {r['driver_cpu_ms']:.1f} | {r['wall_ms']:.1f} | {size_kb:.1f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cpu, size) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for name in dict.fromkeys(r["request"] for r in rows):
        mine = [r for r in rows if r["request"] == name]
        xs = [r["tasks_done"] for r in mine]
        cpu.plot(xs, [r["driver_cpu_ms"] for r in mine], marker="o", label=name)
        size.plot(xs, [r["bytes"] / 1000 for r in mine], marker="o", label=name)
    cpu.set_ylabel("driver CPU per request (ms)")
    cpu.set_title("A look at a running stage through the driver's REST API")
    cpu.legend()
    size.set_ylabel("answer (KB)")
    size.set_yscale("log")
    size.set_xlabel("tasks of the stage done")
    for ax in (cpu, size):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=3000, help="tasks of the stage (30 ms each, 2 slots)")
    parser.add_argument("--requests", type=int, default=40, help="requests of each kind per measurement")
    parser.add_argument("--at", type=float, nargs="+", default=[0.05, 0.25, 0.5], help="shares of the tasks done")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="print the README table from the JSON and stop")
    args = parser.parse_args()
    if args.table:
        print(markdown_table(json.loads((args.out / "rest_polling.json").read_text())["rows"]))
        return 0
    started = time.time()
    rows = measure(args.tasks, args.requests, sorted(args.at))
    args.out.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": f"{os.cpu_count()} CPUs",
        "tasks": args.tasks,
        "requests": args.requests,
        "elapsed_s": round(time.time() - started),
        "rows": rows,
    }
    (args.out / "rest_polling.json").write_text(json.dumps(document, indent=2) + "\n")
    plot(rows, args.out / "rest_polling.png")
    print(markdown_table(rows))
    print(f"wrote {args.out / 'rest_polling.json'} and {args.out / 'rest_polling.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
