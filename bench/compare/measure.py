"""Child processes measured for the nerfstudio comparison: wall and CPU time, peak memory (PSS) of the tree."""

from __future__ import annotations

import os
import resource
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]




def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                # The command name (field 2) may hold spaces; the parent pid is the 2nd field after ")".
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class Measured:
    """What `run_measured` saw of a child process tree."""

    peak_gb: float
    wall_s: float
    cpu_s: float
    """user + system CPU seconds of the whole tree (children are reaped, so `RUSAGE_CHILDREN` has them)."""
    load_avg: float
    """mean 1-minute load average while it ran: > 2 on this 2-core machine means others competed for the CPU."""

    @property
    def cores_used(self) -> float:
        return self.cpu_s / max(self.wall_s, 1e-9)


def run_measured(cmd: list[str], log_path: Path, env: dict | None = None, poll_s: float = 1.0) -> Measured:
    """Run `cmd` with output to `log_path`, polling its process tree's memory; fails loudly."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"$ {shlex.join(cmd)}\n  (log: {log_path})", flush=True)
    peak, loads = 0, []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        while proc.poll() is None:
            peak = max(peak, sum(_pss_bytes(pid) for pid in _process_tree(proc.pid)))
            loads.append(os.getloadavg()[0])
            time.sleep(poll_s)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise SystemExit(f"command failed ({proc.returncode}): {shlex.join(cmd)}\n--- {log_path} (tail)\n{tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    measured = Measured(peak / 1024**3, wall, cpu, sum(loads) / max(len(loads), 1))
    print(f"  done in {wall:.0f} s, {measured.cores_used:.2f} cores used, load {measured.load_avg:.1f}, "
          f"peak {measured.peak_gb:.2f} GB", flush=True)
    return measured
