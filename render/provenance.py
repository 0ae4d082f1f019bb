"""Say honestly what a rendered video is: metadata, an invisible watermark, a visible label, C2PA.

Four independent labels, each checked by `verify_video`, which grades them (`VerifyReport.verdict`, strongest
first: signed, signed (untrusted signer), watermarked, invalid manifest, tagged only, unlabelled):
- Metadata tags (title, comment "synthetic render", software + version, description) in every format: MP4/MOV
  container tags written by the muxer, PNG iTXt chunks (Title, Comment, ...), EXR string header attributes
  (`render.frames_out`); `vista verify` reads a video, a PNG or EXR frame, or a folder of them.
- An invisible watermark in every frame carrying Vista's own 48-bit message: a spread-spectrum luma pattern
  (`render.watermark`), which survives H.264, re-encoding, rescaling and centred crops (bench/WATERMARK.md).
- An optional visible "synthetic render" corner label (Pillow).
- A C2PA manifest (`c2pa-python`) with digitalSourceType trainedAlgorithmicMedia, signed with the
  user's certificate and key, applied to the finished MP4 as the very last step.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from render.frames_out import read_display_frames, read_labels, sequence_frames
from render.watermark import (  # noqa: F401 - re-exported: the labels live here
    WATERMARK_BITS,
    WATERMARK_MAX_BIT_ERRORS,
    embed_watermark,
    has_watermark,
    watermark_bit_errors,
    watermark_fits,
)
from vista_core.errors import VistaError

SYNTHETIC_COMMENT = "synthetic render"
LABEL_TEXT = "synthetic render"
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def vista_version() -> str:
    try:
        return importlib.metadata.version("vista")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def video_metadata(title: str) -> dict[str, str]:
    """Container tags every Vista MP4 carries (written as MP4 'mdta' keys, readable by ffprobe/exiftool)."""
    software = f"Vista {vista_version()}"
    return {
        "title": title,
        "comment": SYNTHETIC_COMMENT,
        "software": software,
        "description": f"Synthetic render of a neural radiance field by {software}; not a camera recording.",
    }


def add_label(rgb: np.ndarray, text: str = LABEL_TEXT) -> np.ndarray:
    """Draw a visible label on a dark box in the bottom-right corner (Pillow's bundled font)."""
    from PIL import Image, ImageDraw, ImageFont

    height, width = rgb.shape[:2]
    size = max(8, round(height * 0.035))
    image = Image.fromarray(rgb).convert("RGBA")
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(2, size // 3)
    x1, y1 = width - pad, height - pad
    x0, y0 = x1 - (right - left) - 2 * pad, y1 - (bottom - top) - 2 * pad
    draw.rectangle((x0, y0, x1, y1), fill=(0, 0, 0, 140))
    draw.text((x0 + pad - left, y0 + pad - top), text, font=font, fill=(255, 255, 255, 230))
    return np.asarray(Image.alpha_composite(image, overlay).convert("RGB"))


# --- C2PA ------------------------------------------------------------------------------------------

def _signing_algorithm(key_pem: bytes, where: Path) -> str:
    """c2pa's algorithm name for a PEM private key (EC P-256/384/521, Ed25519 or RSA-PSS)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as error:
        raise VistaError(f"{where}: not an unencrypted PEM private key ({error})") from error
    if isinstance(key, ec.EllipticCurvePrivateKey):
        names = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name not in names:
            raise VistaError(f"{where}: EC curve {key.curve.name} is not allowed by C2PA (use P-256/384/521)")
        return names[key.curve.name]
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    raise VistaError(f"{where}: unsupported key type {type(key).__name__} for C2PA signing")


C2PA_MIME_TYPES = {".mp4": "video/mp4", ".mov": "video/quicktime"}


def c2pa_manifest(title: str) -> dict:
    """The manifest definition: a 'created' action by a trained algorithm (C2PA's label for generative AI)."""
    software = f"Vista {vista_version()}"
    return {
        "claim_generator_info": [{"name": "Vista", "version": vista_version()}],
        "title": title,
        "format": "video/mp4",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {"actions": [{
                    "action": "c2pa.created",
                    "digitalSourceType": DIGITAL_SOURCE_TYPE,
                    "softwareAgent": {"name": software},
                    "description": "Rendered from a neural radiance field along a user-drawn camera path",
                }]},
            },
        ],
    }


def sign_c2pa(video: Path, cert_path: Path, key_path: Path, title: str) -> None:
    """Embed a signed C2PA manifest into `video` in place (write a signed copy, then rename over it).

    c2pa-rs refuses self-signed end-entity certificates: `cert_path` must hold the signing certificate
    (digitalSignature key usage, an extended key usage such as emailProtection or documentSigning) followed by
    the certificate(s) of the CA that issued it."""
    import c2pa

    video, cert_path, key_path = Path(video), Path(cert_path), Path(key_path)
    for path, what in ((cert_path, "certificate"), (key_path, "private key")):
        if not path.is_file():
            raise VistaError(f"{path}: {what} file not found")
    cert_pem, key_pem = cert_path.read_bytes(), key_path.read_bytes()
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise VistaError(f"{cert_path}: not a PEM certificate chain")
    algorithm = _signing_algorithm(key_pem, key_path)
    suffix = ".mov" if video.suffix.lower() == ".mov" else ".mp4"  # a temp file `.x.partial.mp4` is an MP4
    mime_type = C2PA_MIME_TYPES[suffix]
    fd, tmp_name = tempfile.mkstemp(prefix=f".{video.name}.", suffix=f".signing{suffix}", dir=video.parent)
    os.close(fd)
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(algorithm, cert_pem, key_pem, None))
        builder = c2pa.Builder(json.dumps({**c2pa_manifest(title), "format": mime_type}))
        with open(video, "rb") as source, open(tmp_name, "w+b") as dest:
            builder.sign(signer, mime_type, source, dest)
            dest.flush()
            os.fsync(dest.fileno())
        os.replace(tmp_name, video)
    except c2pa.C2paError as error:
        raise VistaError(f"C2PA signing of {video} with {cert_path} failed: {error}") from error
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _trust_context(anchors_pem: bytes | None):
    import c2pa

    if anchors_pem is None:
        return None
    settings = c2pa.Settings.from_dict({"verify": {"verify_trust": True},
                                        "trust": {"trust_anchors": anchors_pem.decode("utf-8")}})
    return c2pa.Context(settings)


@dataclass
class C2paReport:
    present: bool
    valid: bool = False
    """The manifest's signature and hashes check out (the signer may still be unknown to the trust list)."""
    trusted: bool = False
    digital_source_type: str | None = None
    signer: str | None = None
    problems: list[str] = field(default_factory=list)


def read_c2pa(path: Path, trust_anchors_pem: bytes | None = None) -> C2paReport:
    """Read and validate the C2PA manifest of a file, if it has one."""
    import c2pa

    try:
        context = _trust_context(trust_anchors_pem)
        reader = (c2pa.Reader.try_create(str(path)) if context is None
                  else c2pa.Reader.try_create(str(path), None, None, context))
    except c2pa.C2paError as error:
        return C2paReport(present=True, problems=[f"unreadable manifest: {error}"])
    if reader is None:
        return C2paReport(present=False)
    with reader:
        store = json.loads(reader.json())
    manifest = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    source_types = [action.get("digitalSourceType") for assertion in manifest.get("assertions", [])
                    if assertion.get("label", "").startswith("c2pa.actions")
                    for action in assertion.get("data", {}).get("actions", [])]
    statuses = [s for s in store.get("validation_status", []) or []]
    codes = [s.get("code", "") for s in statuses]
    # an unknown signer (not on the trust list) does not make the signature or the hashes wrong
    problems = [s.get("code", "") + (f": {s['explanation']}" if s.get("explanation") else "") for s in statuses
                if s.get("code") != "signingCredential.untrusted"]
    state = store.get("validation_state")
    return C2paReport(
        present=True,
        valid=not problems and state in ("Valid", "Trusted", None),
        trusted=state == "Trusted" and "signingCredential.untrusted" not in codes,
        digital_source_type=next((t for t in source_types if t), None),
        signer=(manifest.get("signature_info") or {}).get("issuer"),
        problems=problems,
    )


# --- verification ----------------------------------------------------------------------------------

SYNTHETIC_SOURCE_TYPES = {DIGITAL_SOURCE_TYPE.rsplit("/", 1)[0] + "/" + name for name in
                          ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia")}
"""IPTC digitalSourceType values that declare generated media (a camera's manifest says digitalCapture)."""

# The graded verdict, strongest first. Only the first three count as a label (`vista verify` exits 0).
SIGNED = "signed"
SIGNED_UNTRUSTED = "signed (untrusted signer)"
WATERMARKED = "watermarked"
INVALID_MANIFEST = "invalid manifest"
TAGGED_ONLY = "tagged only"
UNLABELLED = "unlabelled"
LABEL_VERDICTS = (SIGNED, SIGNED_UNTRUSTED, WATERMARKED)


@dataclass
class VerifyReport:
    path: str
    frames: int
    metadata: dict[str, str]
    watermark_frames: int
    sampled_frames: int
    c2pa: C2paReport
    trust_anchors_given: bool = False

    @property
    def synthetic_metadata(self) -> bool:
        return self.metadata.get("comment", "").strip().lower() == SYNTHETIC_COMMENT

    @property
    def watermark_found(self) -> bool:
        return self.sampled_frames > 0 and self.watermark_frames * 2 > self.sampled_frames

    @property
    def signed_synthetic(self) -> bool:
        """A valid C2PA manifest that declares generated media (trusted or not)."""
        return self.c2pa.valid and self.c2pa.digital_source_type in SYNTHETIC_SOURCE_TYPES

    @property
    def verdict(self) -> str:
        """Strongest first. An invalid manifest never counts as a label; it outranks the tags because a broken
        signature is news, and the tags prove nothing either way (`ffmpeg -metadata comment=... -c copy`)."""
        if self.signed_synthetic:
            return SIGNED if self.c2pa.trusted else SIGNED_UNTRUSTED
        if self.watermark_found:
            return WATERMARKED
        if self.c2pa.present and not self.c2pa.valid:
            return INVALID_MANIFEST
        return TAGGED_ONLY if self.synthetic_metadata else UNLABELLED

    @property
    def label_found(self) -> bool:
        return self.verdict in LABEL_VERDICTS

    def _verdict_line(self) -> str:
        c, verdict = self.c2pa, self.verdict
        if verdict == SIGNED:
            return f"labelled as a synthetic render: a valid C2PA manifest by {c.signer!r}, chained to your trust anchors"
        if verdict == SIGNED_UNTRUSTED:
            why = ("does not chain to the trust anchors you passed" if self.trust_anchors_given
                   else "was not checked against a trust anchor (pass --trust-anchors ca.pem)")
            return f"labelled as a synthetic render: a valid C2PA manifest, but its signer {c.signer!r} {why}"
        if verdict == WATERMARKED:
            return (f"labelled as a synthetic render: Vista's invisible watermark decoded in {self.watermark_frames}/"
                    f"{self.sampled_frames} sampled frames")
        if verdict == INVALID_MANIFEST:
            first = c.problems[0] if c.problems else "validation failed"
            return f"the C2PA manifest fails validation ({first}); it does not count as a label"
        if verdict == TAGGED_ONLY:
            return "only metadata tags say 'synthetic render'; anyone can add these tags; not evidence"
        return "no label found"

    def _c2pa_line(self) -> str:
        c = self.c2pa
        if not c.present:
            return "C2PA: no manifest"
        trust = "trusted signer" if c.trusted else "signer not on the trust list"
        source = (c.digital_source_type or "none").rsplit("/", 1)[-1]
        note = "" if not c.valid or self.signed_synthetic else " (does not declare generated media)"
        return (f"C2PA: {'valid' if c.valid else 'INVALID'} manifest, {trust}, issuer {c.signer!r}, "
                f"digitalSourceType {source}{note}")

    def text(self) -> str:
        lines = [f"{self.path}: {self.frames} frames", f"verdict: {self.verdict} - {self._verdict_line()}",
                 self._c2pa_line()]
        lines.extend(f"  problem: {p}" for p in self.c2pa.problems)
        lines.append(f"invisible watermark: {'found' if self.watermark_found else 'not found'} "
                     f"({self.watermark_frames}/{self.sampled_frames} sampled frames)")
        if self.synthetic_metadata:
            lines.append(f"metadata: comment '{SYNTHETIC_COMMENT}', software '{self.metadata.get('software', '?')}', "
                         f"title '{self.metadata.get('title', '')}' (anyone can add these tags; not evidence)")
        else:
            lines.append("metadata: no synthetic-render tags")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"path": self.path, "frames": self.frames, "verdict": self.verdict, "label_found": self.label_found,
                "signals": {
                    "c2pa": {**asdict(self.c2pa), "declares_generated_media": self.signed_synthetic,
                             "trust_anchors_given": self.trust_anchors_given},
                    "watermark": {"found": self.watermark_found, "frames_decoded": self.watermark_frames,
                                  "frames_sampled": self.sampled_frames},
                    "metadata": {"synthetic_tags": self.synthetic_metadata, "tags": self.metadata},
                }}


def verify_video(path: Path, samples: int = 8, trust_anchors_pem: bytes | None = None) -> VerifyReport:
    """Look for every label on a video (MP4, MOV), a PNG or EXR frame, or a folder of frames: metadata tags, the
    watermark in sampled frames (the colour channels, as a viewer shows them), a C2PA manifest (of a folder:
    its first frame's)."""
    path = Path(path)
    count, metadata = read_labels(path)
    k = min(samples, count)
    indices = sorted({round(i * (count - 1) / max(k - 1, 1)) for i in range(k)})
    frames = read_display_frames(path, indices)
    detected = sum(has_watermark(f) for f in frames)
    c2pa_target = sequence_frames(path)[0]
    c2pa_report = (read_c2pa(c2pa_target, trust_anchors_pem) if c2pa_target.suffix.lower() != ".exr"
                   else C2paReport(present=False))  # C2PA defines no embedding in EXR
    return VerifyReport(str(path), count, metadata, detected, len(frames), c2pa_report,
                        trust_anchors_given=trust_anchors_pem is not None)
