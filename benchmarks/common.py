"""Shared benchmark plumbing: result files, markdown tables, machine description."""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from movielens.io import atomic_write_json

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def process_status_kb(*keys: str) -> dict[str, int]:
    """`keys` (e.g. "VmRSS", "VmHWM": resident and peak resident memory) of this process from
    /proc/self/status, in kB as the kernel gives them; missing keys (not Linux) are absent."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in keys:
                values[key] = int(value.split()[0])
    return values


def run_child_process(command: list[str], result_prefix: str) -> tuple[int, list[str], str]:
    """Runs a benchmark step's child process: (exit code, its stdout lines starting with `result_prefix`,
    the last line of its stderr). Every other stdout line (Keras bars, per-epoch validation) is shown as it
    comes; stderr goes to a file, since a full pipe would block the child."""
    results = []
    with tempfile.TemporaryFile("w+") as errors:
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True) as child:
            for line in child.stdout:
                if line.startswith(result_prefix):
                    results.append(line)
                else:
                    print(f"  {line}", end="", flush=True)
        errors.seek(0)
        tail = (errors.read().strip().splitlines() or ["no output"])[-1]
    return child.returncode, results, tail


def machine() -> dict[str, object]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def write_results(name: str, payload: dict) -> Path:
    path = atomic_write_json(RESULTS_DIR / f"{name}.json", {"machine": machine(), **payload})
    print(f"\nresults written to {path}")
    return path


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    def cell(value):
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
