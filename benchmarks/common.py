"""What every efficiency measurement needs: a synchronised clock, a peak-memory probe, provenance, a point store.

Peak memory: on CUDA, torch's allocator peak (max_memory_allocated, reset per measurement); on CPU, the process's
peak resident set (VmHWM in /proc/self/status), reset per measurement by writing "5" to /proc/self/clear_refs
(Linux ≥ 4.0), after handing freed heap pages back to the OS (malloc_trim). Both are reported with the baseline at the reset, so `peak − baseline` is what the measured
work added. Elsewhere (no /proc) the peak is not available and is recorded as null.
"""
import ctypes
import json
import os
import platform
import time
from pathlib import Path

import torch

from tasks.provenance import cpu_name, git_state, machine, package_versions

REPO = Path(__file__).resolve().parents[1]
PROC_STATUS, PROC_CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


class BenchmarkError(ValueError):
    """Bad benchmark input (an unknown config, a malformed results file...)."""


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def clock(device: str) -> float:
    """perf_counter after the device has finished its queued work."""
    sync(device)
    return time.perf_counter()


def _proc_kib(field: str) -> int | None:
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _release_free_heap() -> None:
    """glibc keeps freed heap pages resident, so a step reusing them would add nothing to RSS: give them back
    (malloc_trim) so that RSS counts the memory live now, and the peak what the measured work really needs."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the peak may then undercount reused memory
        pass


def reset_peak(device: str) -> int | None:
    """Start a new peak-memory window; returns the baseline in bytes (None where unmeasurable)."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    _release_free_heap()
    try:
        PROC_CLEAR_REFS.write_text("5")  # VmHWM := VmRSS
    except OSError:
        return None
    rss = _proc_kib("VmRSS")
    return None if rss is None else 1024 * rss


def peak_bytes(device: str) -> int | None:
    """The peak since the last `reset_peak`: torch-allocated bytes (CUDA) or resident bytes (CPU)."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    hwm = _proc_kib("VmHWM")
    return None if hwm is None else 1024 * hwm


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else cpu_name()


def provenance(device: str) -> dict:
    """Machine, card, versions, git sha and thread count: recorded with every result file."""
    return {"device": device, "device_name": device_name(device), "machine": machine(),
            "hostname": platform.node(), "versions": package_versions(), "git": git_state(REPO),
            "torch_threads": torch.get_num_threads(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def job_id(job: dict) -> str:
    """A stable, readable name of a job: its identifying fields in a fixed order."""
    return "-".join(f"{k}={job[k]}" for k in sorted(job) if k != "settings")


class PointStore:
    """Append-only JSONL of measured points (one line each, fsynced), so an interrupted run resumes.

    Each line is {"job": <job id>, "record": "point"|"job_end", ...}. A torn last line (a kill mid-write) is
    ignored; any other unreadable line is an error naming the file and line.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()
        rows = []
        for number, line in enumerate(lines, 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if number == len(lines):
                    break  # torn last line of an interrupted write
                raise BenchmarkError(f"{self.path}: line {number} is not valid JSON") from None
        return rows

    def append(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as file:
            file.write(json.dumps(row, allow_nan=False) + "\n")
            file.flush()
            os.fsync(file.fileno())

    def add_point(self, job: dict, point: dict) -> None:
        """One measured point of the job (the job's fields repeated, so each line reads on its own)."""
        self.append({"job": job_id(job), "record": "point"} | job | point)

    def end_job(self, job: dict, settings: dict, status: str, reason: str = "") -> None:
        """The job's last line: done, or stopped (a budget or memory cap) with the reason."""
        self.append({"job": job_id(job), "record": "job_end", "status": status, "reason": reason,
                     "settings": settings} | job)

    def finished_jobs(self) -> set[str]:
        return {row["job"] for row in self.read() if row.get("record") == "job_end"}

    def points(self, job: str) -> list[dict]:
        return [row for row in self.read() if row["job"] == job and row.get("record") == "point"]

    def forget(self, job: str) -> None:
        """Drop every line of `job` (for --force), rewriting the file atomically."""
        rows = [row for row in self.read() if row["job"] != job]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
        os.replace(tmp, self.path)


__all__ = ["BenchmarkError", "PointStore", "clock", "device_name", "job_id", "peak_bytes", "provenance",
           "reset_peak", "sync"]
