"""The machine a benchmark ran on, recorded beside its figures: a time means little without it."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def machine_info() -> dict[str, Any]:
    """CPU, cores (all, and those this process may run on), memory, kernel, and the versions of the
    libraries that set the speed of a benchmark (Python, NumPy, FAISS and its threads, gRPC)."""
    import faiss
    import grpc
    import numpy as np

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    meminfo = Path("/proc/meminfo").read_text().split()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)),
        "memory_gib": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / (1 << 20), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "grpcio": grpc.__version__,
        "faiss": faiss.__version__,
        "faiss_threads": faiss.omp_get_max_threads(),
    }
