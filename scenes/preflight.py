"""Pre-flight checks on a folder of photos before structure from motion.

Each photo gets a verdict — used, or excluded with a reason a user can act on — and the photos that
pass are written upright (EXIF orientation applied by Pillow's `ImageOps.exif_transpose`), 8-bit RGB,
at most `max_size` pixels on the long side, ready for COLMAP and the trainer. Photos of different
sizes, orientations and cameras are all kept (structure from motion gives each size its own camera).

Checks, in order: readable (Pillow opens and fully decodes it: a text file named .jpg, a truncated
JPEG and an HEIC without a decoder are refused here), big enough, not blurred relative to the rest of the capture
(variance of the Laplacian, scipy.ndimage), not a near-duplicate of an earlier photo (a DCT
perceptual hash, scipy.fft, confirmed by a pixel difference). The EXIF 35 mm-equivalent focal length
(or the focal length and focal-plane resolution DSLRs write) becomes the focal-length prior for COLMAP.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import fft, ndimage

from vista_core.errors import VistaError
from vista_core.files import atomic_write_bytes

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".heic", ".heif")
MIN_SIDE_PX = 64
MAX_SOURCE_PIXELS = 200_000_000  # a 200 MP photo is real; beyond that Pillow's bomb guard is right
DEFAULT_MAX_SIZE_PX = 1600
BLUR_FRACTION = 0.3  # sharpness below this fraction of the capture's median counts as blurred
DUPLICATE_HASH_BITS = 4  # perceptual hashes closer than this many bits (of 64) are candidates
DUPLICATE_PIXEL_DIFF = 2.0 / 255  # ... and confirmed when the mean absolute difference is below this


@dataclass
class PhotoVerdict:
    """What the pre-flight check decided about one photo."""

    name: str  # path relative to the capture folder
    used: bool = False
    reason: str = ""  # why it was excluded (empty when used)
    width: int = 0  # upright size at the source resolution
    height: int = 0
    sharpness: float = 0.0  # variance of the Laplacian at a common size
    focal_px_prior: float | None = None  # EXIF 35 mm-equivalent focal length, in working-resolution pixels
    taken_at: str = ""  # EXIF camera and capture time ('Make Model @ YYYY:MM:DD HH:MM:SS[.sub]'), or '' without one
    working_name: str | None = None  # file name in the working image folder
    working_width: int = 0  # size of the working copy (the source size bounded by max_size)
    working_height: int = 0
    notes: list[str] = field(default_factory=list)  # conversions done (16-bit, orientation, ...)


@dataclass
class Preflight:
    """Verdicts for every photo; the used ones are written to `image_dir`, each at its own working size."""

    verdicts: list[PhotoVerdict]
    image_dir: Path
    working_size: tuple[int, int]  # (width, height) of most used photos; each verdict has its own

    @property
    def used(self) -> list[PhotoVerdict]:
        return [v for v in self.verdicts if v.used]

    def to_dict(self) -> dict:
        return {"working_size": list(self.working_size), "photos": [asdict(v) for v in self.verdicts]}


def list_photos(folder: Path) -> list[Path]:
    """Image-like files under `folder` (recursively, hidden files skipped), in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VistaError(f"{folder}: photo folder not found")
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _focal_35mm(image: Image.Image) -> float | None:
    """The 35 mm-equivalent focal length (mm) from EXIF, or None.

    FocalLengthIn35mmFilm (0xA405) when the camera wrote it (phones do); otherwise FocalLength (0x920A)
    scaled by the sensor size that FocalPlaneXResolution (0xA20E, pixels per unit 0xA210) and the sensor's
    pixel count (PixelX/YDimension 0xA002/0xA003, else the file's size) give: most DSLRs write only these,
    and a 55 mm lens on an APS-C sensor is an ~86 mm equivalent, not 55."""
    try:
        exif = image.getexif().get_ifd(0x8769)  # the Exif sub-IFD holds the focal-length tags
        value = exif.get(0xA405)
        if value and float(value) > 0:
            return float(value)
        focal_mm, per_unit = float(exif.get(0x920A) or 0), float(exif.get(0xA20E) or 0)
        unit_mm = {2: 25.4, 3: 10.0, 4: 1.0}.get(int(exif.get(0xA210) or 2))  # inch (the default), cm, mm
        if focal_mm <= 0 or per_unit <= 0 or unit_mm is None:
            return None
        pixels = max(int(exif.get(0xA002) or 0), int(exif.get(0xA003) or 0)) or max(image.size)
        sensor_long_mm = pixels / per_unit * unit_mm
        # the 35 mm frame is 36 mm along its long side (COLMAP's convention as well)
        equivalent = focal_mm * 36.0 / sensor_long_mm
        return equivalent if math.isfinite(equivalent) and 5.0 < equivalent < 2000.0 else None
    except Exception:  # noqa: BLE001 - malformed EXIF is common and only costs the prior
        return None


def _to_rgb8(image: Image.Image, notes: list[str]) -> Image.Image:
    """8-bit RGB, whatever Pillow decoded: 16-bit and float greyscale are rescaled, alpha dropped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        notes.append(f"converted {image.mode} to 8-bit")
        array = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(array).convert("RGB")
    if image.mode != "RGB":
        if "A" in image.mode or (image.mode == "P" and "transparency" in image.info):
            notes.append("dropped the alpha channel")
        return image.convert("RGB")
    return image


def _capture_time(image: Image.Image) -> str:
    """'<camera make model> @ <DateTimeOriginal>.<SubSecTimeOriginal>' from EXIF, or '' without a time.

    Sorts in time order within one camera; `scenes.sfm_order` orders a capture by it only when every photo
    has one from the same camera (internet photos of a landmark have times, but no common capture)."""
    try:
        base = image.getexif()
        exif = base.get_ifd(0x8769)
        taken = str(exif.get(0x9003) or "").strip("\x00 ")
        sub = str(exif.get(0x9291) or "").strip("\x00 ")
        camera = " ".join(str(base.get(tag) or "").strip("\x00 ") for tag in (0x010F, 0x0110)).strip()
    except Exception:  # noqa: BLE001 - malformed EXIF only costs the capture order
        return ""
    if not taken:
        return ""
    return (f"{camera} @ {taken}.{sub}" if sub.isdigit() else f"{camera} @ {taken}").strip()


def read_photo(path: Path, notes: list[str]) -> tuple[Image.Image, float | None, str]:
    """Open, fully decode and orient one photo. Raises VistaError with the reason it is unusable.

    Returns the upright 8-bit RGB image, its EXIF 35 mm-equivalent focal length (or None) and EXIF
    capture time (or '')."""
    suffix = path.suffix.lower()
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_SOURCE_PIXELS:
                raise VistaError(f"{image.width}x{image.height} is larger than {MAX_SOURCE_PIXELS:,} pixels")
            image.load()  # decodes everything: truncated files fail here, not later in COLMAP
            focal_35 = _focal_35mm(image)
            taken = _capture_time(image)
            upright = ImageOps.exif_transpose(image)
            if upright is not image and (upright.size != image.size or image.getexif().get(0x0112, 1) != 1):
                notes.append("rotated upright from EXIF orientation")
            return _to_rgb8(upright, notes), focal_35, taken
    except VistaError:
        raise
    except UnidentifiedImageError as error:
        if suffix in (".heic", ".heif"):
            raise VistaError("HEIC/HEIF photo and this Pillow cannot decode it; export it as JPEG "
                             "(or pip install pillow-heif)") from error
        raise VistaError("not an image Pillow can read (wrong extension or corrupt file)") from error
    except Image.DecompressionBombError as error:
        raise VistaError(f"too many pixels ({error})") from error
    except (OSError, SyntaxError, ValueError) as error:
        if "truncated" in str(error).lower():
            raise VistaError("truncated file (the copy or download did not finish)") from error
        raise VistaError(f"corrupt image ({error})") from error


def laplacian_variance(gray: np.ndarray) -> float:
    """Sharpness as the variance of the Laplacian (Pech-Pacheco et al. 2000): low means blurred."""
    return float(ndimage.laplace(gray.astype(np.float64)).var())


def perceptual_hash(gray: np.ndarray) -> np.ndarray:
    """64-bit pHash: signs of the 8x8 lowest DCT frequencies of a 32x32 thumbnail, relative to their median."""
    small = np.asarray(Image.fromarray(gray.astype(np.uint8)).resize((32, 32), Image.Resampling.LANCZOS),
                       dtype=np.float64)
    low = fft.dctn(small, norm="ortho")[:8, :8].ravel()
    return low > np.median(low[1:])


def _analysis_gray(image: Image.Image, long_side: int = 512) -> np.ndarray:
    """Greyscale at a common size so sharpness is compared like with like across resolutions."""
    scale = long_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return np.asarray(image.convert("L").resize(size, Image.Resampling.BILINEAR), dtype=np.float32)


def _working_size(width: int, height: int, max_size: int) -> tuple[int, int]:
    scale = min(1.0, max_size / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _working_name(rel: Path, taken: set[str]) -> str:
    stem = "_".join(rel.with_suffix("").parts)
    name = f"{stem}.jpg"
    counter = 1
    while name.lower() in taken:
        counter += 1
        name = f"{stem}_{counter}.jpg"
    taken.add(name.lower())
    return name


@dataclass
class _Survey:
    """What step 1 learned of each photo still in the running (keyed by its index in the folder listing)."""

    verdicts: list[PhotoVerdict] = field(default_factory=list)
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)  # upright source size
    grays: dict[int, np.ndarray] = field(default_factory=dict)  # small greyscale copies for blur and duplicates
    focal_35: dict[int, float] = field(default_factory=dict)


def preflight_photos(folder: Path, image_dir: Path, max_size: int = DEFAULT_MAX_SIZE_PX,
                     photos: list[Path] | None = None) -> Preflight:
    """Check every photo under `folder`, write the usable ones upright at the working size to `image_dir`.

    Never raises for a bad photo (it is excluded with its reason); raises VistaError only when the
    folder itself is missing or holds no photo files. Memory stays bounded for hundreds of photos:
    each photo is decoded once, written at most `max_size` on its long side, and only a small
    greyscale copy is kept for the blur and duplicate checks.
    """
    folder, image_dir = Path(folder), Path(image_dir)
    if max_size < MIN_SIDE_PX:
        raise VistaError(f"--max-size {max_size} is below the {MIN_SIDE_PX} px minimum")
    paths = list_photos(folder) if photos is None else photos
    if not paths:
        raise VistaError(f"{folder}: no photo files ({', '.join(PHOTO_SUFFIXES)}) found")
    survey = _survey_photos(folder, paths, image_dir, max_size)  # 1. decode, orient, measure, write
    # photos of other sizes and orientations are kept: each size gets its own COLMAP camera (scenes.sfm)
    # and its own intrinsics in transforms.json, as COLMAP and nerfstudio handle one camera per photo
    _exclude_blurred(survey)  # 2. blur relative to the capture
    _exclude_near_duplicates(survey)  # 3. a tripod burst, or the same photo re-saved
    working = _finish_working_copies(survey, image_dir, max_size)  # 4. keep the used photos' copies
    return Preflight(survey.verdicts, image_dir, working)


def _survey_photos(folder: Path, paths: list[Path], image_dir: Path, max_size: int) -> _Survey:
    """Decode, orient and measure each photo; write a provisional working copy of the readable ones."""
    survey = _Survey()
    verdicts = survey.verdicts
    digests: dict[str, int] = {}
    taken: set[str] = set()
    for i, path in enumerate(paths):
        verdict = PhotoVerdict(name=path.relative_to(folder).as_posix())
        verdicts.append(verdict)
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as error:
            verdict.reason = f"cannot be read ({error.strerror})"
            continue
        if digest in digests:
            verdict.reason = f"duplicate: the same file as {verdicts[digests[digest]].name}"
            continue
        digests[digest] = i
        try:
            image, focal, verdict.taken_at = read_photo(path, verdict.notes)
        except VistaError as error:
            verdict.reason = str(error)
            continue
        verdict.width, verdict.height = image.size
        if min(image.size) < MIN_SIDE_PX:
            verdict.reason = f"too small ({image.width}x{image.height}; at least {MIN_SIDE_PX} px a side)"
            continue
        survey.sizes[i] = image.size
        survey.grays[i] = _analysis_gray(image)
        verdict.sharpness = laplacian_variance(survey.grays[i])
        if focal:
            survey.focal_35[i] = focal
        verdict.working_name = _working_name(Path(verdict.name), taken)
        bounded = _working_size(*image.size, max_size)
        atomic_write_bytes(image_dir / verdict.working_name,
                           _jpeg_bytes(image if image.size == bounded else image.resize(bounded, Image.LANCZOS)))
        del image
    return survey


def _exclude_blurred(survey: _Survey) -> None:
    sizes, verdicts = survey.sizes, survey.verdicts
    sharpness = np.array([verdicts[i].sharpness for i in sizes])
    if len(sharpness) < 3:
        return
    threshold = BLUR_FRACTION * float(np.median(sharpness))
    for i in list(sizes):
        if verdicts[i].sharpness < threshold:
            verdicts[i].reason = (f"blurred: sharpness {verdicts[i].sharpness:.0f} is below "
                                  f"{BLUR_FRACTION:.0%} of the capture's median {threshold / BLUR_FRACTION:.0f}")
            del sizes[i]


def _exclude_near_duplicates(survey: _Survey) -> None:
    """Near-duplicates of an earlier kept photo."""
    sizes, verdicts, grays = survey.sizes, survey.verdicts, survey.grays
    kept: list[int] = []
    hashes = {i: perceptual_hash(grays[i]) for i in sizes}
    for i in list(sizes):
        duplicate_of = next((j for j in kept if _near_duplicate(hashes[i], hashes[j], grays[i], grays[j])), None)
        if duplicate_of is not None:
            verdicts[i].reason = f"near-duplicate of {verdicts[duplicate_of].name} (the camera did not move)"
            del sizes[i]
        else:
            kept.append(i)


def _finish_working_copies(survey: _Survey, image_dir: Path, max_size: int) -> tuple[int, int]:
    """Drop the excluded photos' copies; record each used photo's working size and focal prior.

    Returns the commonest working size (the capture's main camera). Every photo keeps its own size,
    bounded by max_size: a portrait among landscapes or a photo from another camera is used as it is."""
    sizes = survey.sizes
    working = Counter(_working_size(*s, max_size) for s in sizes.values()).most_common(1)[0][0] if sizes else (0, 0)
    for i, verdict in enumerate(survey.verdicts):
        if verdict.working_name is None:
            continue
        if i not in sizes:
            (image_dir / verdict.working_name).unlink(missing_ok=True)
            verdict.working_name = None
            continue
        verdict.working_width, verdict.working_height = _working_size(*sizes[i], max_size)
        if i in survey.focal_35:
            # COLMAP's convention: the 35 mm frame is 36 mm wide along the image's long side
            verdict.focal_px_prior = survey.focal_35[i] / 36.0 * max(verdict.working_width, verdict.working_height)
        verdict.used = True
    return working


def _near_duplicate(hash_a: np.ndarray, hash_b: np.ndarray, gray_a: np.ndarray, gray_b: np.ndarray) -> bool:
    if int(np.count_nonzero(hash_a != hash_b)) >= DUPLICATE_HASH_BITS or gray_a.shape != gray_b.shape:
        return False
    return float(np.abs(gray_a - gray_b).mean()) / 255.0 < DUPLICATE_PIXEL_DIFF


def _jpeg_bytes(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, subsampling=0)
    return buffer.getvalue()


def summarize_exclusions(preflight: Preflight) -> str:
    """One line: how many photos were excluded and the commonest reasons."""
    excluded = [v for v in preflight.verdicts if not v.used]
    if not excluded:
        return f"all {len(preflight.verdicts)} photos passed the pre-flight check"
    kinds = Counter(v.reason.split(":")[0].split(" (")[0] for v in excluded)
    return (f"{len(excluded)} of {len(preflight.verdicts)} photos excluded: "
            + ", ".join(f"{n} {k}" for k, n in kinds.most_common(4)))


def focal_prior(preflight: Preflight) -> float | None:
    """The median EXIF focal length of the used photos (working-resolution pixels), if any has one."""
    values = [v.focal_px_prior for v in preflight.used if v.focal_px_prior]
    if not values:
        return None
    value = float(np.median(values))
    return value if math.isfinite(value) and value > 0 else None
