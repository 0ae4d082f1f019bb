"""Vista vs nerfstudio's nerfacto on lego-200, side by side on this machine, for the same wall-clock budgets.

    .venv/bin/python bench/nerfstudio_compare.py [--budgets 2,5,10] [--quick] [--vista-presets preview]

1. Sets up nerfstudio 1.1.5 in its own venv (`bench/out/ns-venv`, torch pinned like Vista's), so its pins
   never touch `.venv`. Offline workarounds live in `bench/compare/ns_offline.py` (LPIPS stand-in, no
   AlexNet download; pickled checkpoints allowed under torch >= 2.6).
2. Trains nerfacto once on the CPU with its pure-PyTorch backend (`--machine.device-type cpu
   --pipeline.model.implementation torch`; nerfacc/tcnn do not compute on a CPU), with the Blender
   settings of nerfstudio's own benchmark script (`scripts/benchmarking/launch_train_blender.sh`), and
   saves a checkpoint when its training clock passes each budget (`bench/compare/ns_budget_train.py`).
   Its step-based schedule makes a snapshot at B minutes equal to a B-minute run.
3. Renders the 13 test views of each nerfacto snapshot in the nerfstudio venv (`bench/compare/ns_render.py`)
   and scores them here with Vista's `scenes.evaluate.psnr/ssim`, against the same composited images
   Vista is scored on.
4. Trains Vista once per budget with `bench/train_lego.py` (Vista's learning-rate schedule follows the time
   budget, so a 2-minute run decays its rate by 2 minutes; extra snapshots inside each run give the
   PSNR-vs-time curve).
5. Prints, and writes to `bench/RESULTS.md`: method, budget, steps, rays/s, test PSNR, SSIM, peak memory;
   the time each method needs to reach 20/23/25 dB and the ratio; frames/s at 320x180.

Peak memory is the largest sum of PSS (proportional set size, so pages shared between nerfstudio's
data-loader worker and the trainer are counted once) over the process tree, polled from /proc.
Every phase leaves its measurement in `--out`; `--resume` reuses finished phases after an interruption.
This is a benchmark, not a test: it takes (sum of budgets for Vista) + (largest budget for nerfacto) +
nerfacto's rendering, which on a 2-core CPU is minutes per snapshot.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HELPERS = REPO / "bench" / "compare"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "lego-200"
TORCH_PINS = ["torch==2.14.1", "torchvision==0.29.1"]
NERFSTUDIO_PIN = "nerfstudio==1.1.5"
# nerfstudio's own Blender recipe for nerfacto (scripts/benchmarking/launch_train_blender.sh, which cites
# nerfstudio issue 806): white background, no scene contraction, near/far for the Blender cameras.
NERFACTO_BLENDER_OPTS = [
    "--pipeline.model.background-color", "white",
    "--pipeline.model.proposal-initial-sampler", "uniform",
    "--pipeline.model.near-plane", "2.",
    "--pipeline.model.far-plane", "6.",
    "--pipeline.model.camera-optimizer.mode", "off",
    "--pipeline.model.use-average-appearance-embedding", "False",
    "--pipeline.model.distortion-loss-mult", "0",
    "--pipeline.model.disable-scene-contraction", "True",
]


sys.path.insert(0, str(HELPERS))  # bench/compare: measure.py, report.py
from measure import Measured, run_measured  # noqa: E402  (bench/compare/measure.py)
from report import MethodResult, Point, write_report  # noqa: E402  (bench/compare/report.py)


def ensure_ns_venv(venv: Path) -> Path:
    """Create the nerfstudio venv once (torch first and alone, as setup.sh does); return its python."""
    python = venv / "bin" / "python"
    marker = venv / ".vista-bench-ready"
    if marker.is_file():
        return python
    base = os.environ.get("PYTHON", "python3.11")
    print(f"setting up nerfstudio in {venv} (a few minutes, once)", flush=True)
    if not python.exists():
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run(pip + TORCH_PINS, check=True)
    subprocess.run(pip + [NERFSTUDIO_PIN], check=True)
    subprocess.run([str(python), "-c", "import nerfstudio.scripts.train"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker.write_text(f"{' '.join(TORCH_PINS)} {NERFSTUDIO_PIN}\n")
    return python


def ns_env() -> dict:
    env = dict(os.environ)
    env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"  # nerfstudio 1.1.5 pickles its checkpoints
    env["PYTHONWARNINGS"] = "ignore"
    return env


# ---------------------------------------------------------------- nerfacto


def _cached_measured(path: Path, resume: bool, cmd: list[str], log: Path, env: dict | None = None) -> Measured:
    """Run a phase, or with `resume` reuse its measurement if it completed before (`path` holds it)."""
    if resume and path.is_file():
        print(f"reusing {path}", flush=True)
        return Measured(**json.loads(path.read_text()))
    measured = run_measured(cmd, log, env=env)
    path.write_text(json.dumps(asdict(measured), indent=2))
    return measured


def train_nerfacto(python: Path, data: Path, budgets: list[float], rays_per_batch: int, out: Path,
                   resume: bool, model_opts: list[str] | None = None, dataparser: list[str] | None = None,
                   experiment: str = "lego-200") -> tuple[dict, Measured, list[str]]:
    """Phase 1 (timed): one nerfacto run with a checkpoint at each budget. Returns (record, measured, command).

    `model_opts` default to nerfstudio's Blender recipe and `dataparser` to `blender-data --data DATA`;
    `bench/real_captures.py` passes nerfacto's own defaults and `nerfstudio-data` for real captures."""
    model_opts = NERFACTO_BLENDER_OPTS if model_opts is None else model_opts
    dataparser = ["blender-data", "--data", str(data)] if dataparser is None else dataparser
    marks_s = ",".join(f"{b * 60:g}" for b in budgets)
    record = out / "nerfacto-run.json"
    cmd = [str(python), str(HELPERS / "ns_budget_train.py"), "--marks-s", marks_s, "--record", str(record),
           "--", "nerfacto",
           "--machine.device-type", "cpu", "--pipeline.model.implementation", "torch",
           "--pipeline.datamanager.train-num-rays-per-batch", str(rays_per_batch),
           *model_opts,
           "--output-dir", str(out / "nerfacto"), "--experiment-name", experiment, "--timestamp", "bench",
           "--vis", "tensorboard", "--viewer.quit-on-train-completion", "True",
           "--max-num-iterations", "10000000", "--steps-per-save", "10000000",
           "--save-only-latest-checkpoint", "False",
           "--steps-per-eval-batch", "0", "--steps-per-eval-image", "0", "--steps-per-eval-all-images", "0",
           "--logging.local-writer.enable", "False", "--logging.profiler", "none",
           *dataparser]
    if not (resume and record.is_file()):
        (out / "nerfacto-train.json").unlink(missing_ok=True)
    measured = _cached_measured(out / "nerfacto-train.json", resume and record.is_file(), cmd,
                                out / "logs" / "nerfacto-train.log", env=ns_env())
    run = json.loads(record.read_text())
    if run["rays_per_batch"] != rays_per_batch or [s["mark_s"] for s in run["snapshots"]] != [b * 60 for b in budgets]:
        raise SystemExit(f"{record}: made with other budgets or rays per step; delete it or run without --resume")
    return run, measured, cmd


def render_and_score_nerfacto(python: Path, run: dict, train_measured: Measured, train_cmd: list[str], out: Path,
                              score, max_views: int | None, resume: bool,
                              eval_budgets: list[float] | None = None, fps_size: str = "320x180") -> MethodResult:
    """Phase 3 (untimed except the frame rate): render each snapshot's test views, score them here.

    The largest budget is rendered first (it bounds the speed-up), and each snapshot is saved as it
    completes, so an interrupted run resumes with `--resume`."""
    import numpy as np

    render_dir = out / "nerfacto-renders"
    if not resume and render_dir.exists():
        for old in render_dir.glob("*"):
            old.unlink()
    wanted = [s for s in run["snapshots"] if eval_budgets is None or any(abs(s["mark_s"] - b * 60) < 1e-6
                                                                          for b in eval_budgets)]
    steps = sorted({s["checkpoint_step"] for s in wanted}, reverse=True)
    cmd = [str(python), str(HELPERS / "ns_render.py"), "--config", str(REPO / run["config_path"]),
           "--steps", ",".join(map(str, steps)), "--out", str(render_dir), "--fps-size", fps_size]
    if max_views is not None:
        cmd += ["--max-views", str(max_views)]
    render_measured = run_measured(cmd, out / "logs" / "nerfacto-render.log", env=ns_env())
    names = json.loads((render_dir / "views.json").read_text())
    result = MethodResult("nerfacto", command=shlex.join(train_cmd))
    for snap in run["snapshots"]:
        if snap not in wanted:
            result.notes.append(f"the {snap['mark_s'] / 60:g}-min snapshot ({snap['steps']} steps) was trained but not "
                                "rendered (`--nerfacto-eval-budgets`), so it is missing from the table and the curve")
            continue
        images = np.load(render_dir / f"step-{snap['checkpoint_step']}.npy")
        psnr, ssim = score(names, images)
        result.points.append(Point(snap["mark_s"] / 60, snap["steps"], psnr, ssim, snap["rays"] / snap["train_s"]))
    result.add_phase("nerfacto training (one run, checkpoints at the budgets)", train_measured)
    result.add_phase("nerfacto rendering (13 test views per snapshot; frame rate)", render_measured)
    result.fps_320x180 = json.loads((render_dir / "render.json").read_text())["fps"]
    result.notes.append(f"nerfstudio 1.1.5, `--pipeline.model.implementation torch` on the CPU, "
                        f"{run['rays_per_batch']} rays per step, nerfstudio's Blender options; one run, checkpointed when its training clock "
                        "(from the first step, checkpoint saving excluded) passed each budget — its learning-rate "
                        "schedule is step-based, so that equals a run of that budget")
    return result


def make_scorer(data: Path, partial_ok: bool = False):
    """Vista's PSNR/SSIM on the test views, against the images composited as Vista's evaluation does."""
    import torch

    from scenes.data import load_posed_images
    from scenes.evaluate import psnr, ssim

    posed = load_posed_images(data)
    by_name = {Path(posed.names[i]).as_posix(): i for i in posed.heldout_indices}

    def score(names: list[str], images) -> tuple[float, float]:
        values = []
        for name, image in zip(names, images, strict=True):
            key = Path(name).resolve().relative_to(Path(data).resolve()).as_posix()
            if key not in by_name:
                raise SystemExit(f"nerfstudio test view {name} is not one of Vista's held-out views")
            reference = posed.composited(by_name[key])
            rendered = torch.from_numpy(image).float().clamp(0, 1)
            values.append((psnr(rendered, reference), ssim(rendered, reference)))
        if len(values) != len(by_name) and not partial_ok:
            raise SystemExit(f"nerfstudio rendered {len(values)} test views, Vista holds out {len(by_name)}")
        return (sum(v[0] for v in values) / len(values), sum(v[1] for v in values) / len(values))

    return score


# ---------------------------------------------------------------- Vista (through bench/train_lego.py)

_ROW = re.compile(r"^\| ([\d.]+) \((snapshot|end)\) \| (\d+) \| ([\d.]+) \| ([\d.]+) \|$")
_RAYS = re.compile(r"^training: ([\d,]+) rays/s")
_FPS = re.compile(r"^rendering 320x180: ([\d.]+) frames/s")


def parse_train_lego(text: str, where: Path) -> tuple[list[tuple[float, str, int, float, float]], float, float]:
    rows, rays, fps = [], None, None
    for line in text.splitlines():
        line = line.strip()
        if m := _ROW.match(line):
            rows.append((float(m[1]), m[2], int(m[3]), float(m[4]), float(m[5])))
        elif m := _RAYS.match(line):
            rays = float(m[1].replace(",", ""))
        elif m := _FPS.match(line):
            fps = float(m[1])
    if not rows or rays is None or fps is None:
        raise SystemExit(f"{where}: could not read bench/train_lego.py's table (did its output format change?)")
    return rows, rays, fps


def curve_marks(budget: float, budgets: list[float], extra: list[float]) -> list[float]:
    """Extra snapshot times (minutes) for the PSNR-vs-time curve that the run with `budget` takes.

    Each extra time goes to the shortest run that is longer than it (whose learning rate has decayed the
    furthest by then); each costs a 13-view evaluation, so there are only a few."""
    return [m for m in extra if m not in budgets and min((b for b in budgets if b > m), default=None) == budget]


def vista_revision() -> str:
    """The commit Vista ran from, and whether the shared checkout had uncommitted changes to its code."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "render", "scenes"], cwd=REPO, capture_output=True,
                           text=True).stdout.strip()
    return f"{head.strip() or 'unknown'}{' + uncommitted changes' if dirty else ''}"


def run_vista(preset: str, data: Path, budgets: list[float], out: Path, resume: bool,
              extra_marks: list[float]) -> MethodResult:
    """Phase 2 (timed): one `bench/train_lego.py` run per budget, with extra snapshots for the curve."""
    result = MethodResult(f"Vista ({preset})")
    commands = []
    for budget in budgets:
        name = f"vista-{preset}-{budget:g}min"
        snapshots = ",".join(f"{m:g}" for m in curve_marks(budget, budgets, extra_marks) + [budget])
        cmd = [sys.executable, str(REPO / "bench" / "train_lego.py"), "--data", str(data), "--preset", preset,
               "--minutes", f"{budget:g}", "--snapshots", snapshots, "--out", str(out / name)]
        log = out / "logs" / f"{name}.log"
        revision_file = out / f"{name}.revision"
        if not (resume and revision_file.is_file() and (out / f"{name}.json").is_file()):
            revision_file.write_text(vista_revision())
        measured = _cached_measured(out / f"{name}.json", resume, cmd, log)
        commands.append(shlex.join(cmd))
        rows, rays, fps = parse_train_lego(log.read_text(errors="replace"), log)
        result.add_phase(f"Vista {preset}, {budget:g}-min run (training, snapshots, evaluation, frame rate; "
                         f"code {revision_file.read_text().strip()})", measured)
        result.fps_320x180 = fps  # the longest run's final scene, like nerfacto's
        for minutes, kind, steps, psnr, ssim in rows:
            if kind == "end":
                # The row is labelled with the measured training time; the run's budget is `budget`.
                result.points.append(Point(budget, steps, psnr, ssim, rays, is_budget=True))
            else:
                result.points.append(Point(minutes, steps, psnr, ssim, None, is_budget=False))
    result.command = " ; ".join(commands)
    result.notes.append(f"`bench/train_lego.py --preset {preset}`, one run per budget (Vista's learning-rate "
                        "schedule follows the time budget); the curve's extra points are snapshots inside those runs "
                        "before their learning rate has decayed, so they are conservative")
    return result


def parse_budgets(text: str) -> list[float]:
    try:
        budgets = sorted({float(b) for b in text.split(",") if b.strip()})
    except ValueError:
        raise SystemExit(f"--budgets: expected minutes like 2,5,10, got {text!r}") from None
    if not budgets or budgets[0] <= 0:
        raise SystemExit("--budgets: need positive minutes")
    return budgets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--budgets", default="2,5,10", help="wall-clock training budgets in minutes")
    parser.add_argument("--vista-budgets", default=None,
                        help="Vista's budgets when they differ from nerfacto's (default: --budgets); e.g. a 30-minute "
                             "nerfacto run against Vista's 2,5,10")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1-minute budget, nerfacto at 1024 rays per step; writes bench/out/")
    parser.add_argument("--vista-presets", default="preview",
                        help="Vista presets to run, comma-separated (e.g. preview,quality)")
    parser.add_argument("--ns-rays-per-batch", type=int, default=None,
                        help="nerfacto rays per step (default 4096 as nerfacto ships; 1024 with --quick)")
    parser.add_argument("--ns-venv", type=Path, default=REPO / "bench" / "out" / "ns-venv")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default bench/out/compare[-quick])")
    parser.add_argument("--results", type=Path, default=None,
                        help="markdown report (default bench/RESULTS.md; bench/out/compare-quick/RESULTS.md "
                             "with --quick)")
    parser.add_argument("--test-views", type=int, default=None,
                        help="debugging only: score nerfacto on the first N test views (not comparable)")
    parser.add_argument("--nerfacto-eval-budgets", default=None,
                        help="render/score only these nerfacto snapshots (minutes, comma-separated): its CPU "
                             "rendering takes about a minute per 200x200 view on 2 idle cores")
    parser.add_argument("--curve-snapshots", default="0.5,1,1.5",
                        help="extra Vista snapshots (minutes) for the time-to-PSNR curve, each taken in the shortest "
                             "run longer than it; '' for none")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the phases a previous run with the same --out finished (nerfacto training, each "
                             "Vista run, each rendered nerfacto snapshot)")
    args = parser.parse_args()

    budgets = [1.0] if args.quick and args.budgets == "2,5,10" else parse_budgets(args.budgets)
    vista_budgets = budgets if args.vista_budgets is None else parse_budgets(args.vista_budgets)
    eval_budgets = None if args.nerfacto_eval_budgets is None else parse_budgets(args.nerfacto_eval_budgets)
    rays = args.ns_rays_per_batch or (1024 if args.quick else 4096)
    out = args.out or REPO / "bench" / "out" / ("compare-quick" if args.quick else "compare")
    results_path = args.results or (out / "RESULTS.md" if args.quick else REPO / "bench" / "RESULTS.md")
    out.mkdir(parents=True, exist_ok=True)
    data = args.data.resolve()
    if not (data / "transforms_train.json").is_file():
        raise SystemExit(f"{data}: not a Blender dataset (transforms_train.json missing)")
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    command = shlex.join([".venv/bin/python", "bench/nerfstudio_compare.py", *sys.argv[1:]])
    sys.path.insert(0, str(REPO))

    # Timed phases first and back to back (nerfacto training, then Vista), so they see similar machine load;
    # nerfacto's long test-view rendering (untimed apart from its frame rate) comes last.
    scorer = make_scorer(data, partial_ok=args.test_views is not None)
    python = ensure_ns_venv(args.ns_venv)
    run, train_measured, train_cmd = train_nerfacto(python, data, budgets, rays, out, args.resume)
    extra_marks = [float(m) for m in args.curve_snapshots.split(",") if m.strip()]
    vistas = [run_vista(p.strip(), data, vista_budgets, out, args.resume, extra_marks)
              for p in args.vista_presets.split(",") if p.strip()]
    nerfacto = render_and_score_nerfacto(python, run, train_measured, train_cmd, out, scorer, args.test_views,
                                         args.resume, eval_budgets)
    if args.test_views is not None:
        nerfacto.notes.append(f"DEBUG: scored on only {args.test_views} of the 13 test views, not comparable")
    results = [nerfacto, *vistas]
    (out / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    print(write_report(results, command, results_path, started, args.quick))
    print(f"written: {results_path}")


if __name__ == "__main__":
    main()
