"""render.provenance: metadata tags, the invisible watermark after H.264, the visible label, C2PA, `vista verify`."""

from __future__ import annotations

import datetime
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from render.encode import Mp4Writer, probe_video, read_frames
from render.provenance import (
    DIGITAL_SOURCE_TYPE,
    add_label,
    embed_watermark,
    has_watermark,
    read_c2pa,
    sign_c2pa,
    verify_video,
    watermark_bit_errors,
)
from render.video import VideoConfig, VideoOutputs, render_video
from tests.conftest import shared_dataset
from tests.test_video import orbit, psnr, sphere_renderable
from vista import main
from vista_core.errors import VistaError


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def watermarked_video(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """A 256x256 render of the painted sphere with every label Vista puts on by default."""
    folder = tmp_path_factory.mktemp("provenance")
    out = folder / "shot.mp4"
    render_video(sphere_renderable(), orbit(4, 256, 256), out, VideoConfig(fps=12), VideoOutputs(keep_frames=True),
                 show_progress=False)
    return out, read_frames(out)


def _ordinary_video(path: Path, frames: list[np.ndarray]) -> Path:
    """An MP4 written by PyAV directly: no tags, no watermark, no manifest."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_watermark_survives_h264_on_every_frame_and_is_absent_from_raw_renders(watermarked_video):
    out, decoded = watermarked_video
    detected = [has_watermark(frame) for frame in decoded]
    assert len(decoded) == 4 and np.mean(detected) >= 0.95
    cache = sorted((out.parent / "shot.mp4.frames").glob("*.png"))
    from PIL import Image

    unmarked = [np.asarray(Image.open(p).convert("RGB")) for p in cache]
    assert not any(has_watermark(frame) for frame in unmarked)
    # invisible: the watermarked, encoded frame stays close to the raw render
    assert min(psnr(a, b) for a, b in zip(decoded, unmarked)) > 30


def test_watermark_survives_h264_on_lego_photos_with_white_background(tmp_path):
    """Real content: the NeRF-synthetic lego views (mostly white background), upscaled to 256x256."""
    from PIL import Image

    data = shared_dataset("lego-200")
    frames = []
    for path in sorted((data / "test").glob("r_*.png"))[:8]:
        rgba = Image.open(path).convert("RGBA").resize((256, 256), Image.BICUBIC)
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        frames.append(np.asarray(Image.alpha_composite(white, rgba).convert("RGB")))
    writer = Mp4Writer(tmp_path / "lego.mp4", 256, 256, 24)
    for frame in frames:
        writer.write(embed_watermark(frame))
    writer.close()
    decoded = read_frames(tmp_path / "lego.mp4")
    assert np.mean([has_watermark(f) for f in decoded]) >= 0.95, [watermark_bit_errors(f) for f in decoded]
    assert not any(has_watermark(f) for f in frames)


def test_metadata_tags_say_synthetic_render(watermarked_video):
    info = probe_video(watermarked_video[0])
    assert info.metadata["comment"] == "synthetic render"
    assert info.metadata["software"].startswith("Vista ")
    assert info.metadata["title"]


def test_verify_reports_labels_and_no_label_on_an_ordinary_video(watermarked_video, tmp_path, capsys):
    out, decoded = watermarked_video
    report = verify_video(out)
    assert report.synthetic_metadata and report.watermark_found and not report.c2pa.present
    assert report.watermark_frames == report.sampled_frames == 4
    rng = np.random.default_rng(0)
    plain = _ordinary_video(tmp_path / "plain.mp4", [rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
                                                     for _ in range(4)])
    ordinary = verify_video(plain)
    assert not ordinary.label_found and "no label found" in ordinary.text()
    assert main(["verify", str(plain)]) == 1
    assert "no label found" in capsys.readouterr().out
    assert main(["verify", str(out)]) == 0
    assert "labelled as a synthetic render" in capsys.readouterr().out


def test_visible_label_is_drawn_in_the_bottom_right_corner():
    frame = np.full((180, 320, 3), 200, dtype=np.uint8)
    labelled = add_label(frame)
    changed = np.any(labelled != frame, axis=-1)
    ys, xs = np.nonzero(changed)
    assert changed.any() and ys.min() > 180 * 0.75 and xs.min() > 320 * 0.4
    assert not changed[:90, :160].any()


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vista tests")])


def _key_usage(**flags) -> x509.KeyUsage:
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
             "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{n: flags.get(n, False) for n in names})


def make_signing_credentials(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a signing certificate it issued (c2pa-rs refuses self-signed signing certificates:
    the signer needs digitalSignature key usage and an extended key usage such as emailProtection).
    Returns (chain.pem = signer + CA, key.pem, ca.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Vista Test CA")).issuer_name(_name("Vista Test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    signer = (x509.CertificateBuilder().subject_name(_name("Vista Test Signer")).issuer_name(ca.subject)
              .public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(_key_usage(digital_signature=True), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "chain.pem").write_bytes(signer.public_bytes(pem) + ca.public_bytes(pem))
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "key.pem").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return folder / "chain.pem", folder / "key.pem", folder / "ca.pem"


def test_c2pa_signed_render_verifies_and_tampering_is_detected(tmp_path, capsys):
    chain, key, ca = make_signing_credentials(tmp_path)
    out = tmp_path / "signed.mp4"
    result = render_video(sphere_renderable(), orbit(3, 64, 64), out, VideoConfig(fps=12),
                          VideoOutputs(sign_cert=chain, sign_key=key), show_progress=False)
    assert result.signed
    report = verify_video(out)
    assert report.c2pa.present and report.c2pa.valid, report.c2pa.problems
    assert report.c2pa.digital_source_type == DIGITAL_SOURCE_TYPE
    assert report.synthetic_metadata, "signing keeps the MP4 metadata"
    assert len(read_frames(out)) == 3, "the signed file still decodes"
    assert read_c2pa(out, ca.read_bytes()).trusted, "trusted once its CA is a trust anchor"
    assert main(["verify", str(out), "--trust-anchors", str(ca)]) == 0
    assert "C2PA: valid manifest, trusted signer" in capsys.readouterr().out

    data = bytearray(out.read_bytes())
    mdat = data.find(b"mdat")
    data[mdat + 200] ^= 0xFF  # one byte of the video stream
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(bytes(data))
    bad = read_c2pa(tampered)
    assert bad.present and not bad.valid and bad.problems


def test_c2pa_bad_credentials_are_clear_errors(tmp_path):
    out = tmp_path / "a.mp4"
    render_video(sphere_renderable(), orbit(2, 32, 32), out, VideoConfig(watermark=False), show_progress=False)
    chain, key, _ = make_signing_credentials(tmp_path)
    with pytest.raises(VistaError, match="not found"):
        sign_c2pa(out, tmp_path / "missing.pem", key, "x")
    with pytest.raises(VistaError, match="not an unencrypted PEM private key"):
        sign_c2pa(out, chain, chain, "x")
    with pytest.raises(VistaError, match="both a certificate"):
        render_video(sphere_renderable(), orbit(2, 32, 32), out, outputs=VideoOutputs(sign_cert=chain), show_progress=False)
    assert len(read_frames(out)) == 2, "a failed signing leaves the video as it was"
