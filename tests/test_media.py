"""rerender.media: probing, streaming reads, sequences, image I/O, video writing with audio, errors."""
from __future__ import annotations

import fractions
import os

import numpy as np
import pytest

from _clips import (audio_duration, decode_all, moving_pattern, srgb_to_linear, write_sequence,
                    write_test_video)
from rerender import media
from rerender.media import MediaError

UNICODE_NAME = "clip é 動画.mp4"


def luma_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of the luma planes: yuv420p keeps luma at full resolution, so this measures the
    encoder's quality independently of the (expected) chroma subsampling loss."""
    import cv2

    ya, yb = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float64) for x in (a, b))
    return float(10 * np.log10(255.0**2 / max(((ya - yb) ** 2).mean(), 1e-12)))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """20 frames 64x48 at 30000/1001 fps with a 0.9 s sine audio track, in a non-ASCII path."""
    d = tmp_path_factory.mktemp("clip dir é")
    frames = moving_pattern(20, 48, 64)
    path = write_test_video(d / UNICODE_NAME, frames, fps=fractions.Fraction(30000, 1001), audio_seconds=0.9)
    return path, frames


def test_probe_video(clip):
    path, _ = clip
    info = media.probe(path)
    assert (info.frame_count, info.width, info.height) == (20, 64, 48)
    assert info.fps == fractions.Fraction(30000, 1001)
    assert info.has_audio and not info.is_sequence
    assert info.bit_depth == 8
    assert info.duration == pytest.approx(20 * 1001 / 30000)


def test_read_frames_matches_reference_decode(clip):
    path, frames = clip
    ref, _ = decode_all(path)
    got = list(media.read_frames(path))
    assert len(got) == 20
    for g, r in zip(got, ref):
        assert g.dtype == np.uint8 and g.flags.c_contiguous and g.shape == (48, 64, 3)
        np.testing.assert_array_equal(g, r)
    # the decoded clip is what was encoded: crf 0 (lossless YUV); only the RGB <-> 4:2:0
    # conversion loses a little (about 45 dB)
    assert luma_psnr(got[7], frames[7]) > 40


def test_read_frames_selection_and_size(clip):
    path, _ = clip
    ref, _ = decode_all(path)
    sub = list(media.read_frames(path, slice(5, 9)))
    assert len(sub) == 4
    np.testing.assert_array_equal(sub[0], ref[5])
    np.testing.assert_array_equal(sub[3], ref[8])
    stepped = list(media.read_frames(path, range(1, 20, 6)))
    assert [s.tobytes() for s in stepped] == [ref[i].tobytes() for i in (1, 7, 13, 19)]
    tail = list(media.read_frames(path, slice(-2, None)))
    np.testing.assert_array_equal(tail[1], ref[19])
    small = list(media.read_frames(path, slice(0, 2), size=32))
    assert small[0].shape == (32, 40, 3)  # 64x48 -> short side 32, long 42.7 -> 40


def test_working_size_rounding():
    assert media.working_size(64, 48, None) == (48, 64)
    assert media.working_size(1920, 1080, 512) == (512, 912)  # 910.2 -> 912
    assert media.working_size(1080, 1920, 512) == (912, 512)  # portrait keeps orientation
    assert media.working_size(1000, 1000, 500) == (504, 504)  # 62.5 * 8 rounds up
    assert media.working_size(41, 30, 3) == (8, 8)  # never below 8
    for h, w in [media.working_size(1280, 720, 360), media.working_size(3840, 2160, 1000)]:
        assert h % 8 == 0 and w % 8 == 0
    with pytest.raises(ValueError, match="size"):
        media.working_size(64, 48, 0)


def test_resize_to():
    img = np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3)
    assert media.resize_to(img, (48, 64)) is img
    assert media.resize_to(img, (24, 32)).shape == (24, 32, 3)
    assert media.resize_to(img, (96, 128)).shape == (96, 128, 3)
    flat = np.full((10, 10, 3), 77, np.uint8)
    assert (media.resize_to(flat, (4, 4)) == 77).all()


@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".mov"])
def test_write_video_roundtrip_keeps_count_fps_audio(clip, tmp_path, ext):
    path, _ = clip
    frames = list(media.read_frames(path))
    out = tmp_path / f"out é 動画{ext}"
    n = media.write_video(iter(frames), out, fractions.Fraction(30000, 1001), audio_from=path)
    assert n == 20
    info = media.probe(out)
    assert info.frame_count == 20 and info.fps == fractions.Fraction(30000, 1001)
    assert (info.width, info.height) == (64, 48)
    assert len(list(media.read_frames(out))) == 20
    assert info.has_audio
    assert audio_duration(out) == pytest.approx(audio_duration(path), abs=0.03)
    # the whole track is stream-copied: identical compressed packets, no re-encoding loss
    assert _audio_packets(out) == _audio_packets(path)
    # crf 18 is visually lossless: about 40 dB luma PSNR on this noisy texture
    back = decode_all(out)[0]
    assert luma_psnr(back[10], frames[10]) > 35
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]  # no temporary left behind


def _audio_packets(path) -> list[bytes]:
    import av

    with av.open(os.fspath(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def test_write_video_audio_subrange_and_no_audio(clip, tmp_path):
    path, _ = clip
    fps = fractions.Fraction(30000, 1001)
    frames = list(media.read_frames(path, slice(4, 14)))
    out = tmp_path / "part.mp4"
    media.write_video(frames, out, fps, audio_from=path, audio_start=float(4 / fps), audio_duration=float(10 / fps))
    assert media.probe(out).frame_count == 10
    # AAC pads to whole 1024-sample frames: allow one frame (23 ms) plus encoder delay
    assert audio_duration(out) == pytest.approx(float(10 / fps), abs=0.05)
    silent = tmp_path / "silent.mp4"
    media.write_video(frames, silent, 24)
    info = media.probe(silent)
    assert not info.has_audio and info.fps == 24 and info.frame_count == 10


def test_write_video_odd_size_and_webm(tmp_path):
    frames = [f[:47, :63] for f in moving_pattern(6, 48, 64)]
    out = tmp_path / "odd.mp4"
    assert media.write_video(frames, out, 25) == 6
    info = media.probe(out)
    assert (info.width, info.height, info.frame_count) == (64, 48, 6)  # padded, not cropped
    back = decode_all(out)[0][2]
    assert luma_psnr(back[:47, :63], frames[2]) > 35
    webm = tmp_path / "v.webm"
    media.write_video(frames, webm, fractions.Fraction(24))
    assert media.probe(webm).frame_count == 6


def test_write_video_errors(tmp_path):
    with pytest.raises(MediaError, match="no frames"):
        media.write_video([], tmp_path / "e.mp4", 24)
    with pytest.raises(MediaError, match="unsupported video extension"):
        media.write_video(moving_pattern(2), tmp_path / "e.xyz", 24)
    frames = moving_pattern(2, 48, 64) + moving_pattern(1, 32, 32)
    with pytest.raises(MediaError, match="frame 2 is 32x32"):
        media.write_video(frames, tmp_path / "e.mp4", 24)
    with pytest.raises(ValueError, match=r"frames\[0\]"):
        media.write_video([np.zeros((8, 8), np.float32)], tmp_path / "e.mp4", 24)
    with pytest.raises(MediaError, match="audio source does not exist"):
        media.write_video(moving_pattern(2), tmp_path / "e.mp4", 24, audio_from=tmp_path / "nope.wav")
    assert not list(tmp_path.iterdir())  # failed writes leave nothing behind


@pytest.mark.parametrize("ext,depth", [(".png", 8), (".png", 16), (".jpg", 8), (".tif", 16), (".exr", 32)])
def test_sequences(tmp_path, ext, depth):
    if ext == ".exr":
        pytest.importorskip("OpenEXR", reason="EXR support needs the 'openexr' package")
    frames = moving_pattern(5, 30, 41)
    folder = tmp_path / f"seq {ext[1:]} é"
    write_sequence(folder, frames, ext, depth=depth)
    info = media.probe(folder)
    assert info.is_sequence and info.frame_count == 5 and (info.width, info.height) == (41, 30)
    assert info.bit_depth == depth and info.fps == 24 and not info.has_audio
    got = list(media.read_frames(folder))
    tol = 40 if ext == ".jpg" else 0  # JPEG is lossy; 16-bit and EXR convert back exactly
    for g, f in zip(got, frames):
        assert g.dtype == np.uint8 and g.shape == (30, 41, 3)
        assert np.abs(g.astype(int) - f).max() <= tol
    # printf and glob patterns pick the same frames
    via_printf = list(media.read_frames(os.path.join(folder, "%04d" + ext), slice(1, 3)))
    via_glob = list(media.read_frames(os.path.join(folder, "*" + ext), range(1, 3)))
    for a, b, c in zip(via_printf, via_glob, got[1:3]):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)
    assert media.probe(folder, fps=12.5).fps == fractions.Fraction(25, 2)


def test_sequence_order_is_natural(tmp_path):
    frames = moving_pattern(11, 16, 16)
    write_sequence(tmp_path, frames, ".png", name="f{}")  # f0 .. f10, unpadded
    got = list(media.read_frames(tmp_path))
    for g, f in zip(got, frames):
        np.testing.assert_array_equal(g, f)


def test_image_conversions(tmp_path):
    # 16-bit: exact linear map onto 0..255
    v16 = np.array([[[0, 257, 65535], [32896, 128, 129]]], dtype=np.uint16)
    import cv2

    cv2.imencode(".png", v16[:, :, ::-1])[1].tofile(tmp_path / "a.png")
    np.testing.assert_array_equal(media.read_image(tmp_path / "a.png"), [[[0, 1, 255], [128, 0, 1]]])
    # grey and RGBA become RGB
    cv2.imencode(".png", np.full((3, 4), 9, np.uint8))[1].tofile(tmp_path / "g.png")
    assert (media.read_image(tmp_path / "g.png") == 9).all() and media.read_image(tmp_path / "g.png").shape == (3, 4, 3)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 2] = 200  # red in BGRA
    rgba[..., 3] = 10
    cv2.imencode(".png", rgba)[1].tofile(tmp_path / "r.png")
    np.testing.assert_array_equal(media.read_image(tmp_path / "r.png")[0, 0], [200, 0, 0])


def test_exr_linear_to_srgb(tmp_path):
    # EXR holds scene-linear floats: read as sRGB-encoded uint8, values > 1 clip to 255
    rgb = np.array([[[0, 128, 255]]], np.uint8)
    lin = srgb_to_linear(rgb)
    lin[0, 0, 2] = 4.0
    OpenEXR = pytest.importorskip("OpenEXR", reason="EXR support needs the 'openexr' package")
    with OpenEXR.File({"type": OpenEXR.scanlineimage}, {"RGB": lin}) as f:
        f.write(os.fspath(tmp_path / "x é.exr"))
    np.testing.assert_array_equal(media.read_image(tmp_path / "x é.exr"), rgb)
    # the common production layout: separate half-float R, G, B (+ A) channels
    img = moving_pattern(1, 12, 16)[0]
    lin = srgb_to_linear(img)
    chans = {c: lin[..., k].astype(np.float16) for k, c in enumerate("RGB")}
    chans["A"] = np.ones((12, 16), np.float16)
    with OpenEXR.File({"type": OpenEXR.scanlineimage}, chans) as f:
        f.write(os.fspath(tmp_path / "half.exr"))
    got = media.read_image(tmp_path / "half.exr")
    assert got.shape == (12, 16, 3) and np.abs(got.astype(int) - img).max() <= 1  # half precision


def test_write_image_roundtrip_unicode(tmp_path):
    img = moving_pattern(1, 20, 30)[0]
    p = tmp_path / "sub dir 動画" / "0007.png"
    media.write_image(p, img)
    np.testing.assert_array_equal(media.read_image(p), img)
    assert [q.name for q in p.parent.iterdir()] == ["0007.png"]
    with pytest.raises(MediaError, match=r"f.png: cannot write float32 images as .png; use .exr, .tif"):
        media.write_image(tmp_path / "f.png", img.astype(np.float32))
    with pytest.raises(MediaError, match="cannot write uint8 images as .exr"):
        media.write_image(tmp_path / "f.exr", img)
    with pytest.raises(ValueError, match="rgb: expected an H x W x 3 array"):
        media.write_image(tmp_path / "f.png", img[:, :, 0])


def test_list_indexed_images(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    for name in ["0000.png", "0010.png", "17.jpg", "notes.txt", "preview.png", ".0003.png"]:
        (tmp_path / name).write_bytes(b"x")
    idx = media.list_indexed_images(tmp_path)
    assert list(idx) == [0, 10, 17]
    assert idx[17].name == "17.jpg"
    media.write_image(tmp_path / "10.jpg", img)
    with pytest.raises(MediaError, match=r"frame 10: 0010\.png and 10\.jpg"):
        media.list_indexed_images(tmp_path)
    with pytest.raises(MediaError, match="does not exist"):
        media.list_indexed_images(tmp_path / "missing")


def test_errors_name_the_file(tmp_path, clip):
    path, _ = clip
    data = path.read_bytes()
    cases = {
        "missing.mp4": None,
        "random.mp4": np.random.default_rng(0).bytes(4000),
        "truncated.mp4": data[: len(data) // 2],
        "empty.mov": b"",
    }
    for name, content in cases.items():
        p = tmp_path / name
        if content is not None:
            p.write_bytes(content)
        with pytest.raises(MediaError) as e:
            list(media.read_frames(p))
        assert str(p) in str(e.value)
    (tmp_path / "doc.txt").write_text("hello")
    with pytest.raises(MediaError, match="unsupported file type"):
        media.probe(tmp_path / "doc.txt")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(MediaError, match="bad.png: cannot decode"):
        media.read_image(tmp_path / "bad.png")


def test_zero_frame_inputs(tmp_path):
    import av

    p = tmp_path / "zero.mkv"
    with av.open(os.fspath(p), "w") as out:  # header only, no frames
        s = out.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()
    with pytest.raises(MediaError) as e:
        media.probe(p)
    assert str(p) in str(e.value)
    empty = tmp_path / "empty folder"
    empty.mkdir()
    with pytest.raises(MediaError, match="no images"):
        media.probe(empty)
    with pytest.raises(MediaError, match="no files match"):
        media.probe(tmp_path / "%04d.png")


def test_truncated_stream_is_detected(tmp_path):
    # a streamable container cut mid-way still opens: the count is what is really decodable
    src = write_test_video(tmp_path / "c.mkv", moving_pattern(20, 48, 64))
    data = src.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    info = media.probe(cut)
    assert 0 < info.frame_count < 20
    assert len(list(media.read_frames(cut))) == info.frame_count


def test_frame_range_out_of_bounds(clip):
    path, _ = clip
    for bad in [slice(0, 21), slice(20, None), slice(5, 5), range(-1, 3), slice(None, None, -1)]:
        with pytest.raises(MediaError) as e:
            media.read_frames(path, bad)
        assert str(path) in str(e.value)
    with pytest.raises(MediaError, match="20 frames"):
        media.read_frames(path, slice(18, 25))


def test_mixed_sequence_errors(tmp_path):
    frames = moving_pattern(2, 16, 16)
    write_sequence(tmp_path, frames, ".png")
    media.write_image(tmp_path / "0002.jpg", frames[0])
    with pytest.raises(MediaError, match="mixes file types"):
        media.probe(tmp_path)
    other = tmp_path / "sizes"
    write_sequence(other, frames, ".png")
    media.write_image(other / "0002.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(MediaError, match=r"0002\.png: frame 2 is 8x8"):
        list(media.read_frames(other))


@pytest.mark.parametrize("degrees,corner", [(90, (1, 0)), (-90, (0, 1)), (180, (1, 1))])
def test_display_rotation_is_applied(tmp_path, degrees, corner):
    # phone videos store upright frames as rotated pixels + a display matrix; we return them
    # upright. A red marker in the stored top-left corner must end up where a counter-clockwise
    # rotation by `degrees` puts it (corner = (bottom?, right?)).
    frames = moving_pattern(2, 48, 64)
    frames[0][:4, :4] = (255, 0, 0)
    p = tmp_path / f"rot{degrees}.mp4"
    write_test_video(p, frames, pix_fmt="yuv444p", options={"crf": "0"}, rotation=degrees)
    info = media.probe(p)
    upright = next(media.read_frames(p))
    expected_hw = (48, 64) if degrees == 180 else (64, 48)
    assert (info.height, info.width) == expected_hw and upright.shape[:2] == expected_hw
    ys, xs = np.nonzero((upright[..., 0] > 200) & (upright[..., 1] < 60) & (upright[..., 2] < 60))
    h, w = expected_hw
    assert (ys.mean() > h / 2, xs.mean() > w / 2) == (bool(corner[0]), bool(corner[1]))


@pytest.mark.parametrize("ext", [".avi", ".webm", ".mpeg", ".mkv", ".mov", ".mp4"])
def test_containers_roundtrip(tmp_path, ext):
    frames = moving_pattern(6, 48, 64)
    out = tmp_path / f"v{ext}"
    assert media.write_video(frames, out, 25) == 6
    info = media.probe(out)
    assert (info.frame_count, info.fps, info.width, info.height) == (6, 25, 64, 48)
    got = list(media.read_frames(out))
    assert len(got) == 6
    assert luma_psnr(got[3], frames[3]) > 35  # measured 40-42 dB for H.264 / VP9 / MPEG-2


@pytest.mark.parametrize("ext, dtype", [(".png", np.uint16), (".tif", np.uint16), (".exr", np.float16),
                                        (".exr", np.float32), (".tif", np.float32), (".png", np.uint8)])
def test_plates_keep_their_depth_and_alpha(tmp_path, ext, dtype):
    rng = np.random.default_rng(3)
    if np.dtype(dtype).kind == "f":
        rgb = (rng.random((6, 9, 3)) * 3 - 0.2).astype(dtype)  # HDR values and negatives survive
        alpha = rng.random((6, 9)).astype(dtype)
    else:
        top = np.iinfo(dtype).max
        rgb, alpha = rng.integers(0, top + 1, (6, 9, 3), dtype=dtype), rng.integers(0, top + 1, (6, 9), dtype=dtype)
    path = tmp_path / f"plate{ext}"
    media.write_image(path, rgb, alpha=alpha)
    got, got_alpha = media.read_plate(path)
    assert got.dtype == dtype and got_alpha.dtype == dtype
    np.testing.assert_array_equal(got, rgb)
    np.testing.assert_array_equal(got_alpha, alpha)
    media.write_image(path, rgb)
    assert media.read_plate(path)[1] is None


def test_working_format_round_trips_each_depth():
    rng = np.random.default_rng(4)
    u16 = rng.integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    w = media.to_working(u16)
    assert w.dtype == np.float32 and w.max() <= 255.0
    np.testing.assert_array_equal(media.from_working(w, "uint16"), u16)  # exact
    half = (rng.random((5, 7, 3)) * 4).astype(np.float16)
    back = media.from_working(media.to_working(half), "float16")
    np.testing.assert_array_equal(back, half)  # within half precision: bit-exact after the round trip
    u8 = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert media.to_working(u8) is u8
