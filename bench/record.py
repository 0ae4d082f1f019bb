"""A benchmark's machine-readable result: what it measured plus the commit, command and machine that measured it
(README: every figure traces to a file under bench/results/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def write_record(benchmark: str, name: str, fields: dict) -> Path:
    """Write bench/results/`name` with `fields` after the commit, command, machine and load average; its path."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    record = {"benchmark": benchmark, "commit": commit, "command": "PYTHONPATH=. " + " ".join(sys.argv),
              "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
              "load_average": os.getloadavg(), **fields}
    target = REPO / "bench" / "results" / name
    target.write_text(json.dumps(record, indent=1) + "\n")
    print(f"written to {target.relative_to(REPO)}")
    return target
