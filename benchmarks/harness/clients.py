"""The load processes: started once per suite, each running one load generator at a time.

The load runs in processes of its own, never in the server's: a client in the server's process would
take its CPU and its GIL. Several processes are used when one cannot keep the server busy. They are
spawned (not forked), so that nothing of the parent (threads, gRPC state) leaks into them, and they live
for the whole suite, so that imports and request pools are paid once.

Each process holds two pools of the same users: protobuf messages for the gRPC loads (load.py) and
OpenRTB JSON for the HTTP ones (http_load.py). A spec whose `service` is a URL path (it starts with
"/") is an HTTP load.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from personabid.bench.load import LoadResult, LoadSpec, run_in_loop

POOL_SIZE = 2000  # distinct users per load process
START_DELAY = 0.5  # seconds between handing out a job and its start: every process begins together


class LoadClients:
    def __init__(self, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self._procs: list[Any] = []
        for number in range(processes):
            parent, child = context.Pipe()
            process = context.Process(target=_serve_jobs, args=(child, number), daemon=True)
            process.start()
            child.close()
            self._pipes.append(parent)
            self._procs.append(process)
        self._jobs = 0

    @property
    def processes(self) -> int:
        return len(self._procs)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def prepare(self, world_dir: Path, timeout: float = 300.0) -> None:
        """Make every process build its request pools of `world_dir`'s users (different users each)."""
        for number, pipe in enumerate(self._pipes):
            pipe.send(("pool", str(world_dir), POOL_SIZE, 1000 + number))
        for pipe in self._pipes:
            self._receive(pipe, timeout)

    def run(self, spec: LoadSpec, start: float, processes: int | None = None) -> list[LoadResult]:
        """Run `spec` in `processes` of the load processes (all by default), all beginning at `start`
        (time.monotonic(); see `start_time`); returns their results."""
        used = self._pipes[: processes or len(self._pipes)]
        self._jobs += 1
        for number, pipe in enumerate(used):
            job = dataclasses.replace(spec, start_at=start, id_prefix=self._jobs * 256 + number)
            pipe.send(("run", job, self._jobs * 7919 + number))
        limit = START_DELAY + spec.warmup + spec.duration + spec.timeout + 60.0
        return [self._receive(pipe, limit) for pipe in used]

    @staticmethod
    def start_time() -> float:
        """A start time that leaves every process the time to receive its job."""
        return time.monotonic() + START_DELAY

    def _receive(self, pipe: Connection, timeout: float) -> Any:
        if not pipe.poll(timeout):
            raise TimeoutError(f"a load process did not answer within {timeout:.0f}s")
        kind, value = pipe.recv()
        if kind == "error":
            raise RuntimeError(f"a load process failed: {value}")
        return value

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(BrokenPipeError, OSError):
                pipe.send(("stop",))
        for process in self._procs:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)

    def __enter__(self) -> LoadClients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve_jobs(pipe: Connection, number: int) -> None:
    """A load process's loop: build request pools, run load specs, until told to stop."""
    import traceback

    from personabid.bench import http_load
    from personabid.bench.requests import request_pool
    from personabid.demo import read_world

    pool: list[bytes] = []
    json_pool: list[bytes] = []
    while True:
        message = pipe.recv()
        try:
            if message[0] == "stop":
                return
            if message[0] == "pool":
                _, world_dir, size, seed = message
                # The same seed draws the same users for both.
                pool = request_pool(Path(world_dir), size, seed)
                json_pool = http_load.json_request_pool(read_world(Path(world_dir)), size, seed)
                pipe.send(("ok", len(pool)))
            elif message[0] == "run":
                _, spec, seed = message
                if spec.service.startswith("/"):
                    pipe.send(("ok", http_load.run_in_loop(spec, json_pool, seed)))
                else:
                    pipe.send(("ok", run_in_loop(spec, pool, seed)))
        except Exception:
            pipe.send(("error", traceback.format_exc()))
