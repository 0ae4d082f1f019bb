"""ProgressEvents on a terminal, for every command: a note (an event without a total) is printed as a line on
stdout; a stage with a total drives a tqdm bar on stderr, one bar per stage, as the pipeline's own bars did."""

from __future__ import annotations

from vista_core.progress import ProgressEvent

# stage -> (bar label, unit); other stages are labelled with their own words
BAR_LABELS = {
    "training": ("train", "step"),
    "evaluating held-out views": ("eval", "view"),
    "evaluating on held-out views": ("eval", "view"),
    "patch prior": ("patch prior", "step"),
    "guided training": ("refine", "step"),
    "rendering frames": ("render", "frame"),
}
# metric -> (name on the bar, format)
POSTFIX = {"loss": ("loss", ".4f"), "psnr": ("psnr", ".2f"), "rays_per_s": ("rays_s", ",.0f"),
           "samples_per_ray": ("spr", ".1f")}
POSTFIX_EVERY = 10
"""Steps between updates of the numbers after the bar (formatting them every step costs more than a tiny step)."""


class TerminalProgress:
    """A ProgressCallback that draws bars (`bars=False`: only the notes). Use it as a context manager so the
    last bar is closed."""

    def __init__(self, bars: bool = True):
        self.bars = bars
        self._stage: str | None = None
        self._bar = None

    def __call__(self, event: ProgressEvent) -> None:
        if event.total <= 0:
            self._close()
            self._stage = None
            print(event.stage)
            return
        if event.stage != self._stage:
            self._close()
            self._stage = event.stage
        if event.done <= 0 or not self.bars:
            return  # a bar starts at its first finished unit, so that resumed work shows its true rate
        if self._bar is None:
            self._bar = self._open(event)
        self._bar.update(event.done - self._bar.n)
        if event.metrics and (event.done % POSTFIX_EVERY == 0 or event.done == event.total):
            self._bar.set_postfix(refresh=False, **_postfix(event))  # tqdm sorts keyword postfixes by name

    def _open(self, event: ProgressEvent):
        from tqdm.auto import tqdm

        label, unit = BAR_LABELS.get(event.stage, (event.stage, "it"))
        return tqdm(total=event.total, initial=event.done - 1, desc=label, unit=unit, dynamic_ncols=True)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self):  # -> Self
        return self

    def __exit__(self, *exc) -> None:
        self._close()


def _postfix(event: ProgressEvent) -> dict[str, str]:
    shown = {name: format(event.metrics[key], spec) for key, (name, spec) in POSTFIX.items() if key in event.metrics}
    grid = getattr(event.snapshot, "grid", None)  # the scene being trained: how much of its box is occupied
    # (not for proposal sampling, which leaves the grid to the saves: `Renderable.settle`)
    if grid is not None and getattr(event.snapshot, "proposals", None) is None:
        shown["occ"] = f"{grid.occupied_fraction:.3f}"
    return shown
