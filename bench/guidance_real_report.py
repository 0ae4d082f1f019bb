"""The table, the gate and the provenance of bench/guidance_real.py's results (issue 24)."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


KEYS = ("path_psnr", "path_ssim", "floaters", "floaters_own", "flicker", "train_psnr", "seconds", "prior_seconds")


def fmt(row: dict) -> str:
    return (f"path {row['path_psnr']:.2f} dB / {row['path_ssim']:.3f}, floaters {row['floaters']:.4f} "
            f"(own {row['floaters_own']:.4f}), flicker {row['flicker'] * 255:.2f}/255 "
            f"({row['flicker_compared']:.0%} of pixels compared), train {row['train_psnr']:.2f} dB")


def summarise(result: dict) -> tuple[dict, list[str]]:
    """Means over seeds per variant, the per-seed deltas against `none`, the gate; (means, table lines)."""
    rows = result["rows"]
    names = list(dict.fromkeys(r["variant"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})
    means = {n: {k: float(np.mean([r[k] for r in rows if r["variant"] == n and k in r]))
                 for k in KEYS if any(k in r for r in rows if r["variant"] == n)} for n in names}
    lines = [f"### {result['dataset']}: {len(result['split']['path'])} held-out path views, mean over seeds {seeds}",
             "", "| variant | path PSNR | path SSIM | floaters (vs reference depth) | floaters (own check) | "
             "flicker (/255) | train PSNR | refine s | + prior s |", "|---|---|---|---|---|---|---|---|---|"]
    for n in names:
        m = means[n]
        lines.append(f"| {n} | {m['path_psnr']:.2f} | {m['path_ssim']:.3f} | {m['floaters']:.4f} | "
                     f"{m['floaters_own']:.4f} | {m['flicker'] * 255:.2f} | {m['train_psnr']:.2f} | "
                     f"{m.get('seconds', 0):.0f} | {m.get('prior_seconds', 0):.0f} |")
    base_s = means.get("base", {}).get("seconds", float("nan"))
    lines.append(f"\nbase scene training: {base_s:.0f} s (mean over seeds)")
    for variant, why in result["skipped"].items():
        lines.append(f"- {variant}: skipped ({why})")
    gate = {}
    if "none" in means:
        for n in [n for n in names if n not in ("none", "base")]:
            per_seed = []
            for seed in seeds:
                a = next((r for r in rows if r["seed"] == seed and r["variant"] == n), None)
                b = next((r for r in rows if r["seed"] == seed and r["variant"] == "none"), None)
                if a and b:
                    per_seed.append(delta(a, b))
            d = {k: float(np.mean([p[k] for p in per_seed])) for k in per_seed[0]} if per_seed else {}
            if not d:
                continue
            passed = (d["path_psnr"] >= 0.5 and d["floaters"] <= -0.25 and d["train_psnr"] >= -0.1
                      and d["flicker"] <= 0)
            gate[n] = {"mean": d, "per_seed": dict(zip(map(str, seeds), per_seed)), "gate": passed}
            lines.append(f"- {n} vs none: path {d['path_psnr']:+.2f} dB, floaters {d['floaters'] * 100:+.0f}%, "
                         f"train {d['train_psnr']:+.2f} dB, flicker {d['flicker'] * 255:+.2f}/255 -> gate "
                         f"{'PASSED' if passed else 'not reached'}; per seed path dB "
                         + ", ".join(f"{p['path_psnr']:+.2f}" for p in per_seed))
    if {"fixer", "inpaint"} <= set(names):
        gate["diffusion_pays"] = diffusion_pays(rows, seeds)
        lines.append(f"- fixer vs inpaint (does the diffusion step pay?): {gate['diffusion_pays']['verdict']}")
    default = default_variant()
    if default in means and "base" in means:
        total = means[default]["seconds"] + means[default].get("prior_seconds", 0)
        lines.append(f"- time: the default refine ({default}, with any prior) {total:.0f} s against {base_s:.0f} s of "
                     f"training: {'no longer' if total <= base_s else 'LONGER'} than the training it refines")
    result["means"], result["gate"] = means, gate
    return means, lines


def default_variant() -> str:
    """The variant `vista refine` runs with its defaults on this machine (its tier's name here)."""
    from vista_api.refine import RefineRequest

    tier = RefineRequest("scene", "out").resolved_tier()
    return {"prior": "fixer"}.get(tier, tier)


def delta(a: dict, b: dict) -> dict:
    return {"path_psnr": a["path_psnr"] - b["path_psnr"], "path_ssim": a["path_ssim"] - b["path_ssim"],
            "floaters": a["floaters"] / max(b["floaters"], 1e-12) - 1, "flicker": a["flicker"] - b["flicker"],
            "train_psnr": a["train_psnr"] - b["train_psnr"]}


def diffusion_pays(rows: list[dict], seeds: list[int]) -> dict:
    """fixer minus inpaint per seed, against the seed-to-seed spread (standard deviation over seeds) of either."""
    def values(variant: str, key: str) -> list[float]:
        return [next(r[key] for r in rows if r["seed"] == s and r["variant"] == variant) for s in seeds]

    out = {}
    for key, better in (("path_psnr", 1.0), ("floaters", -1.0)):
        fixer, inpaint = np.array(values("fixer", key)), np.array(values("inpaint", key))
        margin = float(np.mean(fixer - inpaint)) * better
        spread = float(max(np.std(fixer), np.std(inpaint))) if len(seeds) > 1 else float("nan")
        out[key] = {"margin": margin, "spread": spread, "pays": bool(len(seeds) > 1 and margin > spread)}
    pays = any(v["pays"] for v in out.values())
    out["verdict"] = ("needs 2 or more seeds" if len(seeds) < 2 else
                      ("yes" if pays else "no") + f" (path {out['path_psnr']['margin']:+.2f} dB vs spread "
                      f"{out['path_psnr']['spread']:.2f}; floaters {out['floaters']['margin']:+.4f} lower vs spread "
                      f"{out['floaters']['spread']:.4f})")
    out["pays"] = pays
    return out


def provenance() -> dict:
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                        "cuda": torch.cuda.is_available()}}


def merge(results: list[dict]) -> tuple[dict, list[str]]:
    """Runs of one dataset with the same settings and different seeds (e.g. `--seeds 0` then `--seeds 1 2`, each
    written to its own file) as one result: every row, each run's command, commit and load, the means and the gate
    recomputed over all seeds; (result, the summary's table lines)."""
    first = results[0]
    for other in results[1:]:
        for key in ("dataset", "content_hash", "settings", "refine", "split"):
            if other.get(key) != first.get(key):
                raise SystemExit(f"cannot merge: the runs differ in {key!r}")
    rows = [row for result in results for row in result["rows"]]
    seeds = [row["seed"] for row in rows if row["variant"] == "base"]
    if len(seeds) != len(set(seeds)):
        raise SystemExit(f"cannot merge: a seed appears twice ({sorted(seeds)})")
    runs = [{k: r.get(k) for k in ("commit", "dirty", "command", "commands", "date", "load_average_start",
                                   "load_average_end", "minutes", "note", "notes")} for r in results]
    merged = {**{k: v for k, v in first.items() if k not in ("means", "gate")}, "rows": rows, "runs": runs,
              "minutes": sum(r.get("minutes", 0) for r in results)}
    _, lines = summarise(merged)
    return merged, lines


if __name__ == "__main__":
    import argparse
    import json

    # run as a script, bench/ comes first on sys.path and bench/guidance.py would shadow the guidance package
    sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
    parser = argparse.ArgumentParser(description="Merge bench/guidance_real.py results of different seeds.")
    parser.add_argument("results", type=Path, nargs="+", help="result files of one dataset, same settings")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    merged, lines = merge([json.loads(p.read_text()) for p in args.results])
    print("\n".join(lines))
    args.out.write_text(json.dumps(merged, indent=1, default=float) + "\n")
    print(f"written to {args.out}")
