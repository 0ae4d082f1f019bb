"""Real captures: held-out quality after wall-clock budgets, speed and memory of Vista on real photos, with lego-200
as the object-scene regression check, and optionally nerfstudio's nerfacto on the same data in the same run.

    .venv/bin/python bench/real_captures.py [--scenes fox-small,skull-66,lego-200] [--budgets 1,3,10]
        [--lego-budget 10] [--preset preview] [--variants plain,appearance+camera] [--frame-sizes 1280x720,...]
        [--nerfacto]
        [--nerfacto-budgets 1,3,10,30] [--out bench/out/real] [--results bench/results/real-captures.json]

Per scene and budget, one Vista run (`bench/compare/vista_budget_train.py`, its own process, peak memory as PSS
polled by `bench/compare/measure.py`): held-out PSNR/SSIM, training rays/s and samples/ray, seconds per frame at
1280x720 or `--frame-sizes` (lego: 320x180 and 1280x720). skull-66 has no poses: `vista poses` poses it first (its registration count is
recorded; a capture with fewer than half its photos registered is reported, not trained). With `--nerfacto`,
nerfstudio's nerfacto (as shipped: its camera optimizer and appearance embedding on, `nerfstudio-data` with every
8th photo held out, as Vista holds them out) trains once per real scene with checkpoints at `--nerfacto-budgets`
(`bench/nerfstudio_compare.py`'s phases), scored with Vista's PSNR/SSIM.

Held-out views are scored as nerfstudio scores its test views: nothing is optimised on them, so Vista renders them
with the neutral appearance and their dataset pose (nerfacto with its average appearance embedding).
This is a benchmark, not a test: run it alone on the machine; `--budgets 0.2 --scenes fox-small` is a smoke run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HELPERS = REPO / "bench" / "compare"
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(HELPERS))
sys.path.insert(0, str(REPO / "bench"))
from measure import run_measured  # noqa: E402  (bench/compare/measure.py)

VARIANTS = {
    "plain": [],
    "occupancy": ["--sampler", "occupancy"],
    "proposal": ["--sampler", "proposal"],
    "appearance": ["--appearance"],
    "camera": ["--camera-refinement"],
    "appearance+camera": ["--appearance", "--camera-refinement"],
    "appearance+camera+huber": ["--appearance", "--camera-refinement", "--photo-loss", "huber"],
    # "proposal" is the sampler as shipped (with the far-weight prior since #21); these two pin the prior
    "proposal-no-far": ["--sampler", "proposal", "--sampling", "far_weight_penalty=0"],
    "proposal+far": ["--sampler", "proposal", "--sampling", "far_weight_penalty=0.006"],
    "proposal+anneal+far": ["--sampler", "proposal", "--sampling", "proposal_anneal_steps=1000",
                            "--sampling", "far_weight_penalty=0.006"],
}
"""Vista's switches for real photos (`TrainConfig.appearance`, `camera_refinement`, `photo_loss`) and the unbounded
sampler (`SamplingConfig.unbounded_sampler`; "plain" is the preset's)."""
MIN_REGISTERED_FRACTION = 0.5


def revision() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "render", "scenes"], cwd=REPO, capture_output=True,
                           text=True).stdout.strip()
    return f"{head.strip() or 'unknown'}{' + uncommitted changes' if dirty else ''}"


def machine() -> dict:
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}


def pose_skull(out: Path) -> tuple[Path | None, str]:
    """`vista poses` on skull-66's photos; (dataset, note), dataset None when too few photos registered."""
    dataset = out / "skull-66-posed"
    cmd = [sys.executable, "-m", "vista", "poses", str(DATA / "skull-66" / "images"), "--out", str(dataset)]
    if not (dataset / "transforms.json").is_file():
        run_measured(cmd, out / "logs" / "skull-66-poses.log", env=_env())
    frames = json.loads((dataset / "transforms.json").read_text()).get("frames", [])
    photos = len([p for p in (DATA / "skull-66" / "images").iterdir() if p.is_file()])
    note = f"`vista poses` registered {len(frames)} of {photos} photos"
    return (dataset if len(frames) >= MIN_REGISTERED_FRACTION * photos else None), note


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_vista(name: str, data: Path, minutes: float, preset: str, variant: str, sizes: list[str], out: Path,
              downscale: int = 1) -> dict:
    """One budgeted Vista run in its own process; its record plus the measured peak memory and load."""
    folder = out / f"{name}-{variant}-{minutes:g}min{f'-ds{downscale}' if downscale > 1 else ''}"
    record = folder.parent / f"{folder.name}.json"  # not with_suffix: "0.2min" would lose ".2min"
    cmd = [sys.executable, str(HELPERS / "vista_budget_train.py"), str(data), "--out", str(folder), "--record",
           str(record), "--preset", preset, "--minutes", f"{minutes:g}", "--downscale", str(downscale), *VARIANTS[variant]]
    for size in sizes:
        cmd += ["--frame-size", size]
    measured = run_measured(cmd, out / "logs" / f"{folder.name}.log", env=_env())
    result = json.loads(record.read_text())
    result.update(scene=name, variant=variant, command=shlex.join(cmd), peak_gb=measured.peak_gb,
                  wall_s=measured.wall_s, load_avg=measured.load_avg)
    return result


def run_nerfacto(name: str, data: Path, budgets: list[float], out: Path, rays: int, fps_size: str) -> list[dict]:
    """nerfacto as shipped on a real capture, one run with checkpoints at the budgets, scored with Vista's metrics."""
    import nerfstudio_compare as ns  # bench/nerfstudio_compare.py

    python = ns.ensure_ns_venv(REPO / "bench" / "out" / "ns-venv")
    work = out / f"nerfacto-{name}"
    work.mkdir(parents=True, exist_ok=True)
    dataparser = ["nerfstudio-data", "--data", str(data), "--eval-mode", "interval", "--eval-interval", "8"]
    run, measured, cmd = ns.train_nerfacto(python, data, budgets, rays, work, False, model_opts=[],
                                           dataparser=dataparser, experiment=name)
    result = ns.render_and_score_nerfacto(python, run, measured, cmd, work, ns.make_scorer(data), None, False,
                                          fps_size=fps_size)
    rows = []
    for point in result.points:
        rows.append({"scene": name, "variant": "nerfacto", "minutes": point.minutes, "steps": point.steps,
                     "heldout_psnr": point.psnr, "heldout_ssim": point.ssim, "rays_per_s": point.rays_per_s,
                     "samples_per_ray": None, "seconds_per_frame": {fps_size: 1.0 / result.fps_320x180},
                     "peak_gb": measured.peak_gb, "load_avg": measured.load_avg, "command": shlex.join(cmd)})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| scene | method | budget (min) | steps | held-out PSNR | SSIM | rays/s | samples/ray | s/frame | "
             "peak GB | load |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        frames = ", ".join(f"{size}: {s:.2f}" for size, s in (r.get("seconds_per_frame") or {}).items())
        spr = "-" if r.get("samples_per_ray") is None else f"{r['samples_per_ray']:.1f}"
        rays = "-" if r.get("rays_per_s") is None else f"{r['rays_per_s']:,.0f}"
        lines.append(f"| {r['scene']} | {r['variant']} | {r['minutes']:g} | {r['steps']} | {r['heldout_psnr']:.2f} | "
                     f"{r['heldout_ssim']:.4f} | {rays} | {spr} | {frames} | {r['peak_gb']:.2f} | "
                     f"{r['load_avg']:.1f} |")
    return "\n".join(lines)


def parse_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", default="fox-small,skull-66,lego-200")
    parser.add_argument("--budgets", default="1,3,10", help="Vista's wall-clock budgets on the real scenes (minutes)")
    parser.add_argument("--lego-budget", type=float, default=10.0, help="lego-200's budget (the regression check)")
    parser.add_argument("--preset", default="preview")
    parser.add_argument("--variants", default="plain,appearance+camera", help=f"of {sorted(VARIANTS)}")
    parser.add_argument("--downscale", default="1",
                        help="real captures at 1/N of their photos' size: N, or per capture (skull-66=2,fox-small=1)")
    parser.add_argument("--frame-sizes", default="1280x720", help="frame sizes timed on the real scenes (WxH,...)")
    parser.add_argument("--nerfacto", action="store_true", help="also nerfacto on the real scenes (slow)")
    parser.add_argument("--nerfacto-budgets", default="1,3,10,30")
    parser.add_argument("--nerfacto-rays", type=int, default=4096)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "real")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "real-captures.json")
    args = parser.parse_args()
    variants = parse_list(args.variants)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; choose from {sorted(VARIANTS)}")
    budgets = [float(b) for b in parse_list(args.budgets)]
    args.out.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    rows, notes = [], ["held-out views: neutral appearance and dataset pose (nothing is optimised on them)"]
    for name in parse_list(args.scenes):
        data = DATA / name
        if name == "skull-66":
            data, note = pose_skull(args.out)
            notes.append(f"skull-66: {note}")
            if data is None:
                continue
        if name == "lego-200":
            rows += [run_vista(name, data, args.lego_budget, args.preset, "plain", ["320x180", "1280x720"], args.out)]
            continue
        for variant in variants:
            rows += [run_vista(name, data, b, args.preset, variant, parse_list(args.frame_sizes), args.out,
                               downscale_for(args.downscale, name))
                     for b in budgets]
        if args.nerfacto:
            rows += run_nerfacto(name, data, [float(b) for b in parse_list(args.nerfacto_budgets)], args.out,
                                 args.nerfacto_rays, "1280x720")
    print(table(rows))
    for note in notes:
        print(f"- {note}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({
        "benchmark": "bench/real_captures.py", "started": started, "commit": revision(),
        "command": shlex.join([".venv/bin/python", "bench/real_captures.py", *sys.argv[1:]]), "machine": machine(),
        "load_average_at_end": os.getloadavg(), "notes": notes, "rows": rows}, indent=2) + "\n")
    print(f"written: {args.results}")


def downscale_for(spec: str, scene: str) -> int:
    """`--downscale`'s factor for `scene`: "2" for every capture, or "skull-66=2,fox-small=1" (unnamed: 1)."""
    if "=" not in spec:
        return int(spec)
    factors = dict(item.split("=", 1) for item in parse_list(spec))
    return int(factors.get(scene, 1))


if __name__ == "__main__":
    main()
