"""The nerfstudio comparison's results and its markdown report (time to a PSNR, ratios, curves)."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

from measure import Measured

PSNR_TARGETS_DB = (20.0, 23.0, 25.0)


@dataclass
class Point:
    """One evaluated model: after `minutes` of training (the budget it was trained or snapshotted at)."""

    minutes: float
    steps: int
    psnr: float
    ssim: float
    rays_per_s: float | None = None
    is_budget: bool = True
    """True for a row of the table (a budget), False for an extra point of the PSNR-vs-time curve."""


@dataclass
class MethodResult:
    method: str
    points: list[Point] = field(default_factory=list)
    peak_memory_gb: float = 0.0
    fps_320x180: float = 0.0
    command: str = ""
    notes: list[str] = field(default_factory=list)
    phases: list[dict] = field(default_factory=list)
    """One entry per child process: name, wall_s, cpu_s, cores_used, load_avg, peak_gb."""

    def add_phase(self, name: str, measured: Measured) -> None:
        self.peak_memory_gb = max(self.peak_memory_gb, measured.peak_gb)
        self.phases.append({"name": name, **asdict(measured), "cores_used": measured.cores_used})




def time_to_reach(points: list[Point], target_db: float) -> tuple[float | None, bool, float]:
    """Minutes to first reach `target_db` on the measured curve.

    Returns (minutes or None if never reached, whether that is only an upper bound, the longest time
    measured). The curve is the best PSNR seen at or before each time over all runs (a longer run's early
    snapshot and a shorter run both count); between two measured points the time is interpolated linearly.
    If the first point already reaches the target, its time is an upper bound."""
    ordered = sorted(points, key=lambda p: p.minutes)
    longest = ordered[-1].minutes if ordered else 0.0
    best, previous = float("-inf"), None
    for p in ordered:
        value = max(best, p.psnr)
        if value >= target_db:
            if previous is None or value == previous[1]:
                return p.minutes, previous is None, longest
            t0, v0 = previous
            return t0 + (p.minutes - t0) * (target_db - v0) / (value - v0), False, longest
        best, previous = value, (p.minutes, value)
    return None, False, longest


def fmt_minutes(minutes: float, upper_bound: bool = False) -> str:
    text = f"{minutes * 60:.0f} s" if minutes < 2 else f"{minutes:.1f} min"
    return f"≤ {text}" if upper_bound else text


def ratio_rows(vista: MethodResult, nerfacto: MethodResult) -> list[str]:
    """Vista's time over nerfacto's; a bound (< / >) where nerfacto never got there or Vista's time is a bound."""
    rows = ["| PSNR target | Vista time | nerfacto time | Vista/nerfacto time | speed-up |", "|---|---|---|---|---|"]
    for target in PSNR_TARGETS_DB:
        tv, v_bound, _ = time_to_reach(vista.points, target)
        tn, n_bound, longest_n = time_to_reach(nerfacto.points, target)
        if tv is None:
            rows.append(f"| {target:g} dB | not reached | "
                        f"{'not reached' if tn is None else fmt_minutes(tn, n_bound)} | n/a | n/a |")
        elif tn is None:
            rows.append(f"| {target:g} dB | {fmt_minutes(tv, v_bound)} | > {fmt_minutes(longest_n)} (not reached) "
                        f"| < {tv / longest_n:.3f} | > {longest_n / tv:.0f}× |")
        else:
            # Only Vista's bound is one-sided in Vista's disfavour; nerfacto's upper bound makes it a guess.
            sign = "≈ " if n_bound else ("< " if v_bound else "")
            rows.append(f"| {target:g} dB | {fmt_minutes(tv, v_bound)} | {fmt_minutes(tn, n_bound)} | "
                        f"{sign}{tv / tn:.3f} | {'> ' if sign == '< ' else sign}{tn / tv:.1f}× |")
    return rows


def main_table(results: list[MethodResult]) -> list[str]:
    rows = ["| method | budget | steps | rays/s | test PSNR (dB) | SSIM | peak memory |",
            "|---|---|---|---|---|---|---|"]
    for r in results:
        for p in sorted((p for p in r.points if p.is_budget), key=lambda p: p.minutes):
            rays = f"{p.rays_per_s:,.0f}" if p.rays_per_s is not None else "—"
            rows.append(f"| {r.method} | {p.minutes:g} min | {p.steps} | {rays} | {p.psnr:.2f} | {p.ssim:.4f} | "
                        f"{r.peak_memory_gb:.2f} GB |")
    return rows


def curve_rows(results: list[MethodResult]) -> list[str]:
    rows = ["| method | minutes | steps | test PSNR (dB) | SSIM | kind |", "|---|---|---|---|---|---|"]
    for r in results:
        for p in sorted(r.points, key=lambda p: (p.minutes, not p.is_budget)):
            rows.append(f"| {r.method} | {p.minutes:g} | {p.steps} | {p.psnr:.2f} | {p.ssim:.4f} | "
                        f"{'budget' if p.is_budget else 'extra snapshot'} |")
    return rows


def machine_description() -> str:
    model, cores = "unknown CPU", 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            if line.startswith("processor"):
                cores += 1
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return f"{model}, {cores} logical cores, {mem_gb:.0f} GB RAM, no GPU, {platform.platform()}"


def write_report(results: list[MethodResult], command: str, path: Path, started: str, quick: bool) -> str:
    vistas = [r for r in results if r.method.startswith("Vista")]
    nerfacto = next((r for r in results if r.method.startswith("nerfacto")), None)
    lines = ["# Vista vs nerfstudio nerfacto on lego-200 (same machine, same run)", ""]
    if quick:
        lines += ["**Smoke run (`--quick`): 1-minute budgets, not a measurement of record.**", ""]
    lines += [f"- date: {started} (UTC)",
              f"- machine: {machine_description()}",
              f"- command: `{command}`",
              "- data: `../shared/data/lego-200` (NeRF-synthetic lego, 200×200, 87 train / 13 test views), "
              "scored on the 13 test views with Vista's `scenes.evaluate.psnr/ssim` (RGB over white)",
              "- rays/s: training rays per second of training clock; peak memory: largest PSS of the "
              "process tree (training and evaluation); frames/s: 320×180, first test camera, after a warm-up, "
              "on the largest budget's model",
              ""]
    lines += main_table(results) + [""]
    lines += ["| method | frames/s at 320×180 |", "|---|---|"]
    lines += [f"| {r.method} | {r.fps_320x180:.3g} |" for r in results] + [""]
    if nerfacto is not None:
        for v in vistas:
            lines += [f"Time to reach a test PSNR, {v.method} vs nerfacto (linear interpolation between "
                      "measured points; \"not reached\" means not within the largest budget, giving a bound):", ""]
            lines += ratio_rows(v, nerfacto) + [""]
    lines += ["Processes (cores used = CPU seconds / wall seconds, at most 2 here; a 1-minute load average above 2 "
              "means other work competed for the CPU during that phase):", "",
              "| process | wall | CPU | cores used | load avg | peak memory |", "|---|---|---|---|---|---|"]
    for r in results:
        for ph in r.phases:
            lines.append(f"| {ph['name']} | {ph['wall_s']:.0f} s | {ph['cpu_s']:.0f} s | {ph['cores_used']:.2f} | "
                         f"{ph['load_avg']:.1f} | {ph['peak_gb']:.2f} GB |")
    lines += ["", "<details><summary>All measured points (PSNR-vs-time curve)</summary>", ""]
    lines += curve_rows(results) + ["", "</details>", ""]
    for r in results:
        for note in r.notes:
            lines.append(f"- {r.method}: {note}")
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text
