"""Runs inside the nerfstudio venv: `ns-train` with wall-clock snapshots.

    ns-venv/bin/python bench/compare/ns_budget_train.py --marks-s 120,300,600 --record run.json -- \
        nerfacto --machine.device-type cpu ... blender-data --data DATA

Everything after `--` is parsed exactly as `ns-train` parses its command line (tyro over nerfstudio's
method configs) and trained by nerfstudio's own `scripts.train.main`. The only change is a wrapper around
`Trainer.train_iteration` that keeps a training clock (from the start of the first iteration; time spent
saving our snapshots is not counted), saves a checkpoint when the clock passes each mark, and stops
training after the last one. nerfacto's learning-rate schedule depends on the step only, never on a budget,
so a snapshot at 2 minutes is the model a 2-minute run would have produced.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ns_offline import patch_nerfstudio_for_offline_cpu  # noqa: E402


def main() -> None:
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit("usage: ns_budget_train.py --marks-s S1,S2 --record FILE -- <ns-train arguments>")
    split = argv.index("--")
    parser = argparse.ArgumentParser()
    parser.add_argument("--marks-s", required=True, help="training seconds at which to save, comma-separated")
    parser.add_argument("--record", type=Path, required=True, help="JSON file describing the snapshots")
    args = parser.parse_args(argv[:split])
    ns_args = argv[split + 1:]
    marks = sorted(float(m) for m in args.marks_s.split(","))

    patch_nerfstudio_for_offline_cpu()
    import tyro
    from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion
    from nerfstudio.engine.trainer import Trainer
    from nerfstudio.scripts import train as ns_train

    config = tyro.cli(AnnotatedBaseConfigUnion, args=ns_args)
    clock = {"start": None, "paused": 0.0, "iterations": 0}
    snapshots: list[dict] = []
    original_iteration = Trainer.train_iteration

    def timed_iteration(self, step: int):
        if clock["start"] is None:
            clock["start"] = time.perf_counter()
        result = original_iteration(self, step)
        clock["iterations"] += 1
        elapsed = time.perf_counter() - clock["start"] - clock["paused"]
        saved = False
        while marks and elapsed >= marks[0]:
            if not saved:
                pause = time.perf_counter()
                self.save_checkpoint(step)
                clock["paused"] += time.perf_counter() - pause
                saved = True
            rays = clock["iterations"] * self.pipeline.datamanager.get_train_rays_per_batch()
            snapshots.append({"mark_s": marks.pop(0), "train_s": elapsed, "steps": clock["iterations"],
                              "checkpoint_step": step, "rays": rays})
            print(f"[budget] {snapshots[-1]}", flush=True)
        if not marks:
            self.stop_training = True
        return result

    Trainer.train_iteration = timed_iteration
    ns_train.main(config)
    record = {"config_path": str(config.get_base_dir() / "config.yml"),
              "rays_per_batch": config.pipeline.datamanager.train_num_rays_per_batch,
              "snapshots": snapshots}
    args.record.parent.mkdir(parents=True, exist_ok=True)
    args.record.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
