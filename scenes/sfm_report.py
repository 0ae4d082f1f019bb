"""The `vista poses` report: per photo whether it was used and, if not, why; one suggestion for the capture.

`sfm_report.json` is this, as JSON. Photos are 'registered', 'excluded' (pre-flight), 'not registered' (COLMAP
could not place them) or 'suspicious' (placed, but the checks in `scenes.sfm_graph` say the place is likely
wrong: left out of transforms.json, never silently kept).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from scenes.colmap import MatchStats

MIN_PHOTOS = 3
MIN_FEATURES = 100  # fewer SIFT features than this: textureless, dark or very blurred
MIN_INLIERS = 15  # COLMAP's mapper ignores image pairs with fewer verified matches (min_num_matches)
REPORT_FILE = "sfm_report.json"


@dataclass
class PhotoResult:
    """One photo's outcome; `status` is 'registered', 'excluded' (pre-flight), 'not registered' or 'suspicious'."""

    name: str
    status: str
    reason: str = ""
    working_name: str | None = None
    features: int = 0
    best_inliers: int = 0  # most verified matches with any other photo
    points: int = 0  # 3D points it observes (registered photos)
    width: int = 0  # working size (each photo has its own; photos of one size and focal length share a camera)
    height: int = 0


@dataclass
class SfmReport:
    photos: list[PhotoResult]
    matcher: str = ""
    registered: int = 0
    considered: int = 0  # photos that passed the pre-flight check
    registered_fraction: float = 0.0  # of all photos given
    mean_reprojection_error_px: float = 0.0
    points: int = 0
    models: list[int] = field(default_factory=list)  # registered photos per model COLMAP produced
    suggestion: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    working_size: tuple[int, int] = (0, 0)  # of most photos
    focal_prior_px: float | None = None  # of the commonest camera (EXIF), working pixels
    cameras: int = 0  # COLMAP cameras: one per group of photos with the same size and EXIF focal length
    order: str = ""  # how the capture order was found ("file numbers", "EXIF capture time") or "" (none)
    mapper: str = ""  # "incremental" or "global": the one whose result was kept
    pairs_matched: int = 0  # photo pairs COLMAP verified
    loop_pairs_rejected: int = 0  # long-range pairs dropped before mapping: rotation inconsistent around a cycle
    pairs_checked: int = 0  # strongly matched pairs whose two-view rotation was compared with the mapped poses
    pairs_disagreeing: int = 0
    suspicious: int = 0  # photos placed but left out: the checks say their place is likely wrong
    mappers: dict[str, list[int]] = field(default_factory=dict)  # mapper -> [registered, suspicious]

    @property
    def ok(self) -> bool:
        return self.registered >= MIN_PHOTOS

    def table(self) -> str:
        """A plain-text table: one row per photo, then the capture's summary."""
        width = max([len(p.name) for p in self.photos] + [5])
        lines = [f"{'photo':<{width}}  {'status':<15} {'feat':>5} {'inl':>5} {'pts':>5}  reason"]
        for p in self.photos:
            lines.append(f"{p.name:<{width}}  {p.status:<15} {p.features:>5} {p.best_inliers:>5} {p.points:>5}  "
                         f"{p.reason}")
        lines.append(f"registered {self.registered}/{len(self.photos)} photos ({self.registered_fraction:.0%}), "
                     f"mean reprojection error {self.mean_reprojection_error_px:.2f} px, {self.points} points, "
                     f"matcher {self.matcher}, {self.mapper} mapper, {sum(self.seconds.values()):.0f} s")
        lines.append(f"checks: {self.pairs_disagreeing} of {self.pairs_checked} strongly matched pairs disagree with "
                     f"the poses, {self.suspicious} suspicious photo(s) left out, {self.loop_pairs_rejected} "
                     f"inconsistent loop pair(s) dropped" + (f"; capture order from {self.order}" if self.order else ""))
        if self.suggestion:
            lines.append(f"suggestion: {self.suggestion}")
        return "\n".join(lines)


def _why_not_registered(name: str, stats: MatchStats, registered: set[str]) -> str:
    n_features = stats.features.get(name, 0)
    if n_features < MIN_FEATURES:
        return f"too few features ({n_features}): textureless, dark or blurred"
    best = stats.best_inliers.get(name, 0)
    if best < MIN_INLIERS:
        return f"too few matches (best {best} with any photo): it does not overlap the others"
    with_model = max((c for other, c in stats.partners[name].items() if other in registered), default=0)
    if with_model < MIN_INLIERS:
        return (f"matches only photos outside the kept model (best {with_model} with it): "
                "a separate group that could not be joined")
    return f"matched (best {best}) but no consistent pose: too little parallax or repeated patterns"


def _suggestion(report: SfmReport, order: list[str], registered: set[str]) -> str:
    """One actionable sentence for a capture that failed or registered under 90% of its photos."""
    n = len(report.photos)
    excluded = [p for p in report.photos if p.status == "excluded"]
    blurred = sum(p.reason.startswith("blurred") for p in excluded)
    duplicates = sum("duplicate" in p.reason for p in excluded)
    unreadable = len(excluded) - blurred - duplicates
    if n < MIN_PHOTOS:
        return f"only {n} photo(s): take 20 or more, moving around the subject between shots"
    if report.considered < MIN_PHOTOS:
        worst = max((duplicates, "the photos are (near-)identical: move the camera between shots"),
                    (blurred, "the photos are too blurry: hold still or use more light"),
                    (unreadable, "most files are not usable photos: see the reasons per photo"))
        return worst[1]
    suspicious = _suspicious_sentence(report, order)
    if report.registered_fraction >= 0.9 or suspicious:
        return suspicious
    if blurred > 0.2 * n:
        return "the photos are too blurry: hold still or use more light, then retry"
    if report.registered < MIN_PHOTOS:
        return ("no photos could be posed together: they need strong overlap (every part of the scene in 3+ "
                "photos, about 10-20 degrees apart) and a textured subject; try --matcher exhaustive")
    gap = _largest_gap(order, registered)
    if gap and report.matcher == "sequential":
        return (f"add photos between {gap[0]} and {gap[1]}, or retry with --matcher exhaustive if the names "
                "are not in capture order")
    if gap:
        return f"add photos between {gap[0]} and {gap[1]} (the photos in between did not connect)"
    return "add more overlapping photos of the parts that were not registered"


def _suspicious_sentence(report: SfmReport, order: list[str]) -> str:
    """'photos 14.jpg-21.jpg look placed ...' for the suspicious photos, as runs in capture order."""
    shown = {p.working_name: p.name for p in report.photos if p.status == "suspicious"}
    if not shown:
        return ""
    runs: list[list[str]] = []
    for name in order:
        if name in shown:
            if runs and runs[-1][-1] == order[order.index(name) - 1]:
                runs[-1].append(name)
            else:
                runs.append([name])
    text = ", ".join(shown[r[0]] if len(r) == 1 else f"{shown[r[0]]}-{shown[r[-1]]}" for r in runs)
    advice = ("; try --matcher sequential (the names or EXIF times give the capture order)"
              if report.matcher == "exhaustive" and report.order else
              "; photos of the other side with more background in view would disambiguate them")
    return (f"photos {text} look placed on the wrong side of a symmetric or repetitive subject (their poses "
            f"disagree with their neighbours'); they were left out of transforms.json{advice}")


def _largest_gap(order: list[str], registered: set[str]) -> tuple[str, str] | None:
    """The longest run of unregistered photos (in name order) and the registered photos around it."""
    best, start = (0, None), None
    for i, name in enumerate(order + [None]):
        if name is not None and name not in registered:
            start = i if start is None else start
        elif start is not None:
            if i - start > best[0]:
                best = (i - start, (start, i))
            start = None
    if best[1] is None:
        return None
    lo, hi = best[1]
    before = order[lo - 1] if lo > 0 else order[lo]
    after = order[hi] if hi < len(order) else order[hi - 1]
    return before, after


def _report_json(report: SfmReport) -> dict:
    data = asdict(report)
    data["working_size"] = list(report.working_size)
    return data


