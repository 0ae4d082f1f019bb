"""Step 1, photos: the sample scene, a folder in the workspace, or an upload with its pre-flight verdicts.

Each function takes the session's folder and returns the message the studio shows; a user's mistake is a
VistaError. The photos a user excludes are listed in session.json; Build poses only the others.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path, PurePosixPath

from PIL import Image as PILImage

from vista_api.evaluate import describe_scene
from vista_core.errors import VistaError
from vista_core.files import atomic_write_bytes, atomic_write_json, read_json
from vista_studio import limits
from vista_studio import workspace as wsp
from vista_studio.session import require_idle

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DATA = REPO.parent / "shared" / "data" / "lego-100"
"""The bundled sample scene (the NeRF-synthetic lego at 100x100, see ../shared/README.md)."""
THUMB_PX = 192


def use_sample(workspace: Path) -> str:
    require_idle(workspace, "pick other photos")
    if not (SAMPLE_DATA / "transforms_train.json").is_file():
        raise VistaError(f"{SAMPLE_DATA}: the sample scene is not installed (see ../shared/README.md)")
    wsp.update_session(workspace, data=str(SAMPLE_DATA), photos=None, excluded=None, scene=None, refined=None,
                       data_label="the sample scene (lego, 100 views at 100 x 100)")
    return "Using **the sample scene** (lego, 100 views at 100 × 100, already posed). Next: build it."


def load_folder(root: Path, workspace: Path, text: str) -> str:
    """A folder the user typed: a trained Vista scene, or a posed dataset to train."""
    folder = wsp.confine_path(root, workspace, text, "folder")
    require_idle(workspace, "load another folder")
    if not folder.is_dir():
        raise VistaError(f"{text}: folder not found in the workspace {wsp.workspace_root(root)}")
    if (folder / "scene.json").is_file():
        scene = describe_scene(folder)  # the whole scene is loaded (validated) now, not later in the path step
        wsp.update_session(workspace, scene=str(folder), data=scene.data or None, photos=None, refined=None,
                           data_label=f"scene folder {folder.name}")
        return f"Loaded the **trained scene** `{folder.name}` (step {scene.step}). Next: draw a path."
    if (folder / "transforms_train.json").is_file() or (folder / "transforms.json").is_file():
        wsp.update_session(workspace, data=str(folder), photos=None, scene=None, refined=None,
                           data_label=f"posed dataset {folder.name}")
        return f"Using the **posed dataset** `{folder.name}`. Next: build it."
    raise VistaError(f"{text}: neither a Vista scene folder (scene.json) nor a posed dataset (transforms.json)")


def add_photos(workspace: Path, files: list[str] | None) -> str:
    """Copy an upload (photos and/or zips) into the session, then run the pre-flight check on it."""
    from scenes.preflight import preflight_photos, summarize_exclusions

    paths = [Path(f) for f in (files or [])]
    wsp.check_upload(paths)
    require_idle(workspace, "upload other photos")
    staging = stage_upload(paths, workspace)
    photos = workspace / "photos"
    shutil.rmtree(photos, ignore_errors=True)
    staging.rename(photos)
    check = preflight_photos(photos, workspace / "preflight" / "images")
    make_thumbnails(photos, [v.name for v in check.verdicts], workspace / "thumbs")
    atomic_write_json(workspace / "preflight" / "report.json", check.to_dict())
    wsp.update_session(workspace, photos=str(photos), excluded=[], data=None, scene=None, refined=None, poses=None,
                       data_label=f"{len(check.verdicts)} uploaded photos")
    return (f"{summarize_exclusions(check)}. Click a photo to exclude it (or include it again); "
            "Build estimates the poses of the photos marked ✓ and trains the scene.")


def stage_upload(paths: list[Path], workspace: Path) -> Path:
    """The upload's photos unpacked into a staging folder, so that a refused upload leaves the previous one as
    it was; the staging folder is removed when the upload is refused. The caps hold for the whole upload (all
    its zips and photos together), and zips give only their photos and the pose files the studio reads."""
    from scenes.preflight import list_photos
    from scenes.safezip import extract_zip

    limits.check_quota(workspace, adding=sum(Path(p).stat().st_size for p in paths))
    staging = workspace / "photos.new"
    shutil.rmtree(staging, ignore_errors=True)
    cap = budget = limits.LIMITS.max_unpacked_bytes
    try:
        uploads = wsp.copy_uploads(paths, workspace / "uploads")
        for upload in uploads:
            if upload.suffix.lower() == ".zip":
                files = extract_zip(upload, staging / upload.stem, max_total_bytes=budget, keep=studio_member)
            else:
                staging.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(upload, staging / upload.name)
                files = [staging / upload.name]
            budget -= sum(f.stat().st_size for f in files)
            if budget < 0:
                raise VistaError(f"upload: its zips and photos hold more than {limits.gigabytes(cap)} in all")
        names = list_photos(staging) if staging.is_dir() else []
        if not names:
            raise VistaError("upload: no photos (.jpg, .png, ...) in it")
        wsp.check_upload(names)  # a zip may hold more photos than the limit
        # the new photos replace the old ones
        limits.check_quota(workspace, adding=-limits.folder_bytes(workspace / "photos"))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(workspace / "uploads", ignore_errors=True)
    return staging


POSE_FILES = frozenset({"transforms.json", "transforms_train.json", "transforms_val.json", "transforms_test.json",
                        "cameras.txt", "images.txt", "points3D.txt", "cameras.bin", "images.bin", "points3D.bin"})
"""The files besides photos that an uploaded zip may give (the posed-dataset formats the studio reads)."""


def studio_member(rel: PurePosixPath) -> bool:
    """Whether a zip member is kept: a photo or a pose file, not hidden (macOS `._` files, `__MACOSX`)."""
    from scenes.preflight import PHOTO_SUFFIXES

    if any(part.startswith(".") or part == "__MACOSX" for part in rel.parts):
        return False
    return rel.suffix.lower() in PHOTO_SUFFIXES or rel.name in POSE_FILES


def discard_uploads(files: list[str] | str | None, cache: Path) -> None:
    """Delete an upload's temporary files (and their emptied folders) from the web server's upload cache `cache`;
    files elsewhere are left alone."""
    cache = Path(cache).resolve()
    for name in [files] if isinstance(files, str) else files or []:
        path = Path(name).resolve()
        if path.is_relative_to(cache) and path != cache and path.is_file():
            path.unlink(missing_ok=True)
            for folder in path.parents:
                if folder == cache or not folder.is_relative_to(cache):
                    break
                try:
                    folder.rmdir()
                except OSError:  # not empty
                    break


def make_thumbnails(folder: Path, names: list[str], out: Path) -> None:
    """Small JPEGs for the gallery; a grey tile for a photo that cannot be read."""
    out.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        try:
            with PILImage.open(folder / name) as image:
                image = image.convert("RGB")
                image.thumbnail((THUMB_PX, THUMB_PX))
        except Exception:  # unreadable: its verdict says why; the tile only has to exist
            image = PILImage.new("RGB", (THUMB_PX, THUMB_PX * 3 // 4), (150, 150, 150))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        atomic_write_bytes(out / f"{i:04d}.jpg", buffer.getvalue())


def photo_gallery(workspace: Path) -> list[tuple[str, str]]:
    """(thumbnail, caption) per uploaded photo: ✓ used, ✗ excluded by the check (why), ⊘ excluded by you."""
    report_file = workspace / "preflight" / "report.json"
    if not report_file.is_file() or not wsp.read_session(workspace).get("photos"):
        return []
    report = read_json(report_file, "pre-flight report")
    excluded = set(wsp.read_session(workspace).get("excluded", []))
    sfm_file = workspace / "data" / "sfm_report.json"  # after Build: which photos structure from motion posed
    sfm = {p["name"]: p for p in read_json(sfm_file, "poses report")["photos"]} if sfm_file.is_file() else {}
    items = []
    for i, photo in enumerate(report["photos"]):
        posed = sfm.get(photo["name"])
        if not photo["used"]:
            caption = f"✗ {photo['name']}: {photo['reason']}"
        elif posed is not None and posed["status"] in ("not registered", "suspicious") and photo["name"] not in excluded:
            caption = f"✗ {photo['name']}: {posed['status']}: {posed['reason']}"  # suspicious: placed, left out
        elif photo["name"] in excluded:
            caption = f"⊘ {photo['name']}: excluded by you"
        else:
            caption = f"✓ {photo['name']}"
        items.append((str(workspace / "thumbs" / f"{i:04d}.jpg"), caption))
    return items


def toggle_photo(workspace: Path, index: int) -> str:
    """A click on a gallery photo: exclude it, or include it again."""
    require_idle(workspace, "change the photo selection")
    report = read_json(workspace / "preflight" / "report.json", "pre-flight report")
    photos = report["photos"]
    if not 0 <= index < len(photos):
        raise VistaError(f"photo {index} does not exist")
    photo = photos[index]
    if not photo["used"]:
        raise VistaError(f"{photo['name']} is excluded by the pre-flight check: {photo['reason']}")
    excluded = set(wsp.read_session(workspace).get("excluded", []))
    excluded ^= {photo["name"]}
    # another selection needs its own poses: the next Build runs structure from motion again
    wsp.update_session(workspace, excluded=sorted(excluded), data=None, poses=None, scene=None, refined=None)
    shutil.rmtree(workspace / "data", ignore_errors=True)
    state = "excluded" if photo["name"] in excluded else "included again"
    return f"{photo['name']} {state}; {sum(p['used'] for p in photos) - len(excluded)} photos will be used."


def selected_photos(workspace: Path, session: dict) -> Path:
    """A folder with the photos the user kept (links to the uploads), for structure from motion."""
    from scenes.preflight import list_photos

    photos = Path(session["photos"])
    excluded = set(session.get("excluded", []))
    selected = workspace / "selected"
    if selected.exists():
        shutil.rmtree(selected)
    for path in list_photos(photos):
        name = path.relative_to(photos).as_posix()
        if name in excluded:
            continue
        target = selected / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    return selected
