"""A zip uploaded to the studio whose pose file points outside: the studio shows one line and reads nothing outside.

The studio keeps pose files from uploaded zips (vista_studio.photos.POSE_FILES) so that a posed dataset can be
uploaded and then loaded as a folder. Its transforms file is the user's: a `file_path` that is absolute or climbs
out with `../` must not make the server read (and train on, and show in previews) a file elsewhere on the machine.
Reads are watched with a Python audit hook ("open" events, PEP 578), so a read of the canary fails the test
whatever the message says.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import shared_dataset
from vista_studio import build, photos
from vista_studio import workspace as wsp

_OPENED: list[str] | None = None  # paths opened while a test watches (None: not watching)


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _OPENED is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # hooks cannot be removed; it records nothing unless a test sets _OPENED


def _posed_zip(archive: Path, pose_format: str, hostile_path: str) -> None:
    """Three real fox-small photos plus a pose file whose last frame's `file_path` is `hostile_path`."""
    pose = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 4.0], [0.0, 0.0, 0.0, 1.0]]
    names = [f"images/IMG_{i:04d}.jpg" for i in range(1, 4)]
    frames = [{"file_path": name, "transform_matrix": pose} for name in [*names, hostile_path]]
    if pose_format == "nerfstudio":
        pose_file, content = "transforms.json", {"fl_x": 300.0, "fl_y": 300.0, "cx": 135.0, "cy": 240.0,
                                                  "w": 270, "h": 480, "frames": frames}
    else:
        pose_file, content = "transforms_train.json", {"camera_angle_x": 0.8, "frames": frames}
    with zipfile.ZipFile(archive, "w") as zf:
        for i, name in enumerate(names, start=1):
            zf.write(shared_dataset("fox-small") / "images" / f"{i:04d}.jpg", f"posed/{name}")
        zf.writestr(f"posed/{pose_file}", json.dumps(content))


@pytest.mark.parametrize("pose_format", ["nerfstudio", "blender"])
@pytest.mark.parametrize("kind", ["absolute", "climbing"])
def test_uploaded_zip_with_hostile_file_paths_fails_with_one_line_and_reads_nothing_outside(
        tmp_path, pose_format, kind):
    global _OPENED
    root = wsp.workspace_root(tmp_path / "root")
    workspace = wsp.new_workspace(root)
    canary_dir = tmp_path / "outside"
    canary_dir.mkdir()
    canary = canary_dir / "secret.png"
    Image.fromarray(np.full((480, 270, 3), 200, dtype=np.uint8)).save(canary)  # a valid image: reading it would work
    dataset = workspace / "photos" / "upload" / "posed"  # where the studio unpacks the zip (checked below)
    hostile = str(canary) if kind == "absolute" else os.path.relpath(canary, dataset)
    archive = tmp_path / "upload.zip"
    _posed_zip(archive, pose_format, hostile)

    photos.add_photos(workspace, [str(archive)])
    assert dataset.is_dir(), sorted(p.relative_to(workspace).as_posix() for p in workspace.rglob("*"))
    folder_text = dataset.relative_to(root).as_posix()
    assert "posed dataset" in photos.load_folder(root, workspace, folder_text)

    _OPENED = []
    try:
        build.start_build(workspace, "preview", None, 0)
        state = wsp.wait_job(workspace, timeout_s=120)
        opened = list(_OPENED)
    finally:
        _OPENED = None
    assert state is not None and state.status == "failed", state
    message = state.message
    assert "\n" not in message and "Traceback" not in message
    assert "is not inside the dataset folder" in message and "file_path" in message, message
    assert not [p for p in opened if Path(p).resolve().is_relative_to(canary_dir.resolve())], opened
    # the build's loader read the uploaded pose file (the check is on the load path, not a skipped build; every
    # frame's path is confined before any photo is opened, so no photo needs to be)
    pose_file = "transforms.json" if pose_format == "nerfstudio" else "transforms_train.json"
    assert any(Path(p).name == pose_file for p in opened), opened
    assert not (workspace / "scene" / "scene.json").exists()
    shutil.rmtree(canary_dir)
