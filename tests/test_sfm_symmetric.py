"""A can with a label repeated twice around it, orbited once (48 frames, true poses known).

Matching every pair lets each photo match the photo half an orbit away (it shows the same picture), and
COLMAP folds the orbit in two: half the frames are placed 180 degrees off with a tiny reprojection error.
The default for a numbered capture (neighbours + loop-closure pairs checked against a neighbours-only
model) must place >= 95% of the frames within 2 deg and 2% of the extent; the exhaustive path must at
least report what it got wrong instead of keeping it silently.
"""

from __future__ import annotations

import pytest

from scenes.sfm import compare_poses, estimate_poses
from tests.support.symmetric import symmetric_orbit
from vista_core.files import read_json

N_FRAMES = 48


@pytest.fixture(scope="module")
def can(tmp_path_factory):
    folder = tmp_path_factory.mktemp("can")
    return symmetric_orbit(folder, n_views=N_FRAMES, width=240, height=180, folds=2), folder / "truth.json"


def _outcome(out, truth):
    report = read_json(out / "sfm_report.json")
    errors = compare_poses(read_json(out / "transforms.json"), read_json(truth), robust=True)
    misplaced = sorted(set(errors.names) - set(errors.accurate()))
    return report, errors, misplaced


@pytest.mark.slow
def test_default_places_the_orbit_correctly(can, tmp_path):
    photos, truth = can
    report = estimate_poses(photos, tmp_path / "out", progress=lambda event: None)
    assert report.order == "file numbers" and report.matcher == "sequential"
    assert report.loop_pairs_rejected > 50  # the far side's look-alike matches, dropped before mapping
    report_json, errors, misplaced = _outcome(tmp_path / "out", truth)
    assert len(errors.accurate()) >= 0.95 * N_FRAMES
    assert not misplaced  # nothing placed wrongly and kept
    assert errors.median_rotation_deg < 1.0 and errors.median_position_fraction < 0.01
    assert report_json["suspicious"] == 0


@pytest.mark.slow
def test_exhaustive_matching_misplaces_frames_and_says_so(can, tmp_path):
    photos, truth = can
    report = estimate_poses(photos, tmp_path / "out", matcher="exhaustive", progress=lambda event: None)
    report_json, errors, misplaced = _outcome(tmp_path / "out", truth)
    flagged = [p for p in report_json["photos"] if p["status"] == "suspicious"]
    # the mapped model was wrong: frames were found misplaced (and left out), or placed wrongly
    assert len(flagged) + len(misplaced) >= 8
    # ... and whatever stayed misplaced is a minority the report does not hide
    assert len(misplaced) <= len(flagged) or report.suggestion
    assert "--matcher sequential" in report.suggestion
