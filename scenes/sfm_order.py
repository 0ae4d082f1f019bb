"""The capture's order, and which photo pairs structure from motion matches.

A capture has an order when its photos are numbered frames of one sequence (video frames, a phone's
IMG_0412..IMG_0480, a camera's burst) or carry distinct EXIF capture times. Neighbours in that order
see the same part of the subject from nearby; photos far apart in it may only look alike (the far side
of a symmetric object), which is how exhaustive matching placed a third of a 71-frame capture on the
wrong side. So an ordered capture is matched sequentially: every photo with its next
`SEQUENTIAL_WINDOW` photos, plus loop-closure candidates among keyframes (all pairs for up to
`ALL_PAIRS_MAX_PHOTOS` photos, where it is cheap). The loop-closure pairs are then kept only if a model
mapped from the neighbouring pairs alone agrees with their matches (`scenes.sfm_graph`).
Without an order every pair is matched (COLMAP's exhaustive matching), as before.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

SEQUENTIAL_WINDOW = 10  # neighbours matched on each side (COLMAP's sequential matcher's default overlap)
ALL_PAIRS_MAX_PHOTOS = 100  # up to here every pair is a candidate (4,950 pairs: minutes on two cores)
LOOP_KEYFRAMES = 40  # beyond it, loop-closure candidates are all pairs among this many evenly spaced photos
_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")


@dataclass(frozen=True)
class CaptureOrder:
    names: list[str]  # the photos in capture order
    source: str  # "file numbers", "EXIF capture time" or "" (no order: name order, unused for matching)

    @property
    def ordered(self) -> bool:
        return bool(self.source)


def capture_order(names: list[str], taken_at: dict[str, str]) -> CaptureOrder:
    """Numbered names of one sequence first (frames of a video), else distinct EXIF capture times, else none.

    Numbers win over times: a burst's photos can share a second, a video's frames carry no EXIF at all.
    `names` are the working names (`scenes.preflight`), `taken_at` their EXIF 'camera @ time' ('' when
    missing); times from different cameras (internet photos of a landmark) are no capture order."""
    numbered = [_NUMBERED.match(name.rsplit(".", 1)[0]) for name in names]
    if len(names) >= 3 and all(numbered):
        stems = Counter((m.group(1), m.group(3)) for m in numbered)
        numbers = [int(m.group(2)) for m in numbered]
        if len(stems) == 1 and len(set(numbers)) == len(numbers):
            return CaptureOrder([n for _, n in sorted(zip(numbers, names))], "file numbers")
    times = [taken_at.get(name, "") for name in names]  # 'camera @ time' (scenes.preflight)
    one_camera = len({t.partition("@")[0].strip() for t in times}) == 1
    if len(names) >= 3 and all(times) and one_camera and len(set(times)) == len(times):
        return CaptureOrder([n for _, n in sorted(zip(times, names))], "EXIF capture time")
    return CaptureOrder(sorted(names), "")


def candidate_pairs(order: CaptureOrder, kind: str) -> list[tuple[str, str]]:
    """Photo pairs to match: all of them ('exhaustive'), or neighbours plus loop-closure candidates
    ('sequential'). Each pair once, the earlier photo in capture order first."""
    names = order.names
    n = len(names)
    if kind == "exhaustive":
        return [(names[i], names[j]) for i in range(n) for j in range(i + 1, n)]
    pairs = {(i, j) for i in range(n) for j in range(i + 1, min(n, i + SEQUENTIAL_WINDOW + 1))}
    if n <= ALL_PAIRS_MAX_PHOTOS:
        keyframes = list(range(n))
    else:
        step = n / LOOP_KEYFRAMES
        keyframes = sorted({min(n - 1, math.floor(k * step)) for k in range(LOOP_KEYFRAMES)})
    pairs |= {(a, b) for i, a in enumerate(keyframes) for b in keyframes[i + 1:]}
    return [(names[i], names[j]) for i, j in sorted(pairs)]
