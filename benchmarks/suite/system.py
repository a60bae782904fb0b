"""The machine a run happens on, thread settings, and peak memory of a phase."""

import os
import platform
import resource
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Optional

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def thread_environment(threads: int) -> Dict[str, str]:
    """Environment variables that fix the numerical libraries' thread pools (set before importing them)."""
    env = {name: str(threads) for name in THREAD_VARIABLES}
    env["TF_NUM_INTEROP_THREADS"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def set_threads(threads: int) -> None:
    """Fix TensorFlow's and PyTorch's intra-op threads in this process (call before they run anything)."""
    os.environ.update(thread_environment(threads))
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except ImportError:  # pragma: no cover - a torch-only environment
        pass
    except RuntimeError:  # already initialised: the environment variables decided
        pass
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass


def _status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> bool:
    """Reset this process's peak resident memory (Linux ``clear_refs``); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB since it started or since :func:`reset_peak`."""
    kb = _status_kb("VmHWM")
    if kb is None:  # not Linux: the whole process's peak
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.platform == "darwin":
            kb //= 1024
    return kb / 1024.0


def rss_mb() -> float:
    """Current resident memory of this process in MiB (NaN where unknown)."""
    kb = _status_kb("VmRSS")
    return kb / 1024.0 if kb is not None else float("nan")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> Optional[str]:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit(repo: Path) -> Optional[str]:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def machine(repo: Path) -> Dict[str, Any]:
    """What the figures depend on: CPU, cores, memory, OS, Python and library versions, commit."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = os.cpu_count() or 0
    mem_kb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = (float("nan"),) * 3
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": affinity,
        "memory_gb": round(mem_kb / 1024 / 1024, 1) if mem_kb else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in ("alibi-countergan", "alibi", "tensorflow", "keras", "torch", "numpy",
                                              "pandas", "dice-ml")},
        "commit": _git_commit(repo),
        "load_average_at_start": [round(x, 2) for x in load],
    }
