"""Local adapter of the actuator port: model-server processes, each in its own CPU cgroup.

A replica is a ``python -m roma.server`` process on 127.0.0.1. It is moved into its
cgroup (``mlscale/roma-<service>-<n>``) right after it starts, before TensorFlow spawns
its threads, so the quota covers all of them. Starting takes seconds (TensorFlow import,
model build): :meth:`LocalReplicaSet.set_replicas` launches in the background and a
replica joins the router once it listens. Without writable cgroups the set refuses to
start unless ``controlled=False`` (then cores are recorded, not enforced).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from mlscale.cgroups import CgroupUnavailableError, CpuCgroup, cgroup_unavailable_reason

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerSpec:
    """How to start a replica.

    Attributes:
        model_name: Name served.
        builder: ``module:function`` (or None).
        uri: SavedModel path (or None).
        max_batch_size: Dynamic batching bound.
        max_delay_ms: Dynamic batching delay.
        threads: TensorFlow intra-op threads (≈ ceil(coresMax)).
        cwd: Working directory (the builder's module must import from there).
        log_dir: Where each replica's stderr goes.
    """

    model_name: str
    builder: str | None
    uri: str | None
    max_batch_size: int
    max_delay_ms: float
    threads: int
    cwd: Path
    log_dir: Path


@dataclass
class LocalReplica:
    """One running (or starting) replica."""

    name: str
    process: asyncio.subprocess.Process
    cgroup: CpuCgroup | None
    accelerator: bool
    cores: float
    url: str | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    last_usage_s: float = 0.0
    last_read_s: float = field(default_factory=time.monotonic)


class LocalReplicaSet:
    """The replicas of one service on this machine (implements ``ReplicaActuator``)."""

    def __init__(self, service: str, spec: ServerSpec, router_url: str, controlled: bool, cores_max: float) -> None:
        """Create an empty set.

        Raises:
            CgroupUnavailableError: when ``controlled`` and no cgroup can be written.
        """
        if controlled:
            reason = cgroup_unavailable_reason()
            if reason:
                raise CgroupUnavailableError(reason + " (use --uncontrolled to run without CPU limits)")
        self.service = service
        self.spec = spec
        self.router_url = router_url.rstrip("/")
        self.controlled = controlled
        self.cores_max = cores_max
        self._cpu: list[LocalReplica] = []
        self._gpu: list[LocalReplica] = []
        self._serial = 0
        self._starts: set[asyncio.Task[None]] = set()

    async def _spawn(self, accelerator: bool, cores: float) -> LocalReplica:
        self._serial += 1
        name = f"{self.service}-{'gpu' if accelerator else 'cpu'}-{self.serial_tag()}"
        spec = self.spec
        args = [
            sys.executable,
            "-m",
            "roma.server",
            "--name",
            spec.model_name,
            "--port",
            "0",
            "--max-batch-size",
            str(spec.max_batch_size),
            "--max-delay-ms",
            str(spec.max_delay_ms),
            "--threads",
            str(spec.threads),
        ]
        args += ["--builder", spec.builder] if spec.builder else ["--uri", str(spec.uri)]
        if accelerator:
            args.append("--accelerator")
        spec.log_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.pathsep.join(
                [str(spec.cwd), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
            ),
        }
        with (spec.log_dir / f"{name}.log").open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *args, cwd=spec.cwd, stdout=asyncio.subprocess.PIPE, stderr=err, env=env, start_new_session=True
            )
        group = None
        if self.controlled and not accelerator:
            group = CpuCgroup.create(f"roma-{self.service}-{proc.pid}")
            group.add_process(proc.pid)
            group.set_cores(cores)
        rep = LocalReplica(name, proc, group, accelerator, cores)
        log.info("replica %s started pid=%d cores=%.1f", name, proc.pid, cores)
        return rep

    def serial_tag(self) -> str:
        """A short unique suffix for the next replica name."""
        return str(self._serial)

    async def _await_ready(self, rep: LocalReplica, timeout_s: float = 180.0) -> None:
        assert rep.process.stdout is not None
        try:
            line = await asyncio.wait_for(rep.process.stdout.readline(), timeout_s)
        except TimeoutError:
            line = b""
        if not line.startswith(b"LISTENING"):
            code = rep.process.returncode
            raise RuntimeError(
                f"replica {rep.name} did not start (exit {code}); see {self.spec.log_dir / rep.name}.log"
            )
        rep.url = f"http://127.0.0.1:{int(line.split()[1])}"
        if rep.cgroup is not None:
            rep.last_usage_s = rep.cgroup.usage_seconds()
        rep.last_read_s = time.monotonic()
        rep.ready.set()
        await self._register()

    async def _register(self) -> None:
        body = {
            "replicas": [
                {
                    "name": r.name,
                    "url": r.url,
                    "model": self.spec.model_name,
                    "accelerator": r.accelerator,
                    "slots": max(2, self.spec.max_batch_size),
                }
                for r in [*self._cpu, *self._gpu]
                if r.ready.is_set()
            ]
        }
        async with (
            aiohttp.ClientSession() as session,
            session.put(f"{self.router_url}/admin/replicas", json=body) as resp,
        ):
            resp.raise_for_status()

    async def start(self, cpu_replicas: int, gpu_replicas: int) -> None:
        """Start the initial replicas and wait until all serve."""
        new = [await self._spawn(False, self.cores_max) for _ in range(cpu_replicas)]
        new += [await self._spawn(True, self.cores_max) for _ in range(gpu_replicas)]
        self._cpu += [r for r in new if not r.accelerator]
        self._gpu += [r for r in new if r.accelerator]
        await asyncio.gather(*(self._await_ready(r) for r in new))

    async def replicas(self) -> list[str]:
        """CPU replicas (serving or starting), oldest first."""
        return [r.name for r in self._cpu]

    async def set_replicas(self, count: int) -> list[str]:
        """Start (in the background) or stop CPU replicas until ``count`` exist."""
        while len(self._cpu) < count:
            rep = await self._spawn(False, self.cores_max)
            self._cpu.append(rep)
            task = asyncio.get_running_loop().create_task(self._await_ready(rep))
            self._starts.add(task)
            task.add_done_callback(self._starts.discard)
        if len(self._cpu) > count:
            gone, self._cpu = self._cpu[count:], self._cpu[:count]
            await self._register()
            for rep in gone:
                await self._stop(rep)
        return [r.name for r in self._cpu]

    async def set_cores(self, cores: dict[str, float]) -> None:
        """Write each replica's quota (recorded only when uncontrolled)."""
        for rep in self._cpu:
            if rep.name in cores and abs(cores[rep.name] - rep.cores) > 1e-9:
                rep.cores = cores[rep.name]
                if rep.cgroup is not None:
                    rep.cgroup.set_cores(rep.cores)

    async def cpu_utilisation(self) -> dict[str, float]:
        """CPU seconds used per allocated core-second since the last call, per serving replica."""
        out: dict[str, float] = {}
        now = time.monotonic()
        for rep in self._cpu:
            if rep.cgroup is None or not rep.ready.is_set():
                continue
            usage = rep.cgroup.usage_seconds()
            dt = max(now - rep.last_read_s, 1e-6)
            out[rep.name] = (usage - rep.last_usage_s) / (dt * rep.cores)
            rep.last_usage_s, rep.last_read_s = usage, now
        return out

    def cores(self) -> dict[str, float]:
        """Cores of each CPU replica."""
        return {r.name: r.cores for r in self._cpu}

    def serving(self) -> int:
        """CPU replicas that serve now."""
        return sum(1 for r in self._cpu if r.ready.is_set())

    async def _stop(self, rep: LocalReplica) -> None:
        if rep.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                rep.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(rep.process.wait(), 10.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    rep.process.kill()
                await rep.process.wait()
        if rep.cgroup is not None:
            rep.cgroup.destroy()
        log.info("replica %s stopped", rep.name)

    async def close(self) -> None:
        """Stop every replica and remove its cgroup."""
        for task in list(self._starts):
            task.cancel()
        await asyncio.gather(*self._starts, return_exceptions=True)
        reps, self._cpu, self._gpu = [*self._cpu, *self._gpu], [], []
        await asyncio.gather(*(self._stop(r) for r in reps), return_exceptions=True)
