"""Compositing-grade jobs end to end: mattes (exact plate outside), RGBA/EXR outputs, high bit depth
and scene-linear plates kept at their depth, plate alpha kept (``rerender propagate``)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from rerender import media
from rerender.cli import main

H, W, N = 48, 64, 7


def scene(i: int) -> np.ndarray:
    """A textured scene moving right by 2 px per frame, float in [0, 1] (smooth enough for flow)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    x = xx - 2.0 * i
    r = 0.5 + 0.35 * np.sin(x / 5.0) * np.cos(yy / 7.0)
    g = 0.5 + 0.3 * np.cos((x + yy) / 6.0)
    b = 0.4 + 0.3 * np.sin(yy / 4.0 + x / 9.0)
    return np.clip(np.stack([r, g, b], axis=2), 0.02, 0.98)


def restyle(f: np.ndarray) -> np.ndarray:
    """A deterministic "style": inverted, warmer."""
    return np.clip((1.0 - f) * np.float32([1.0, 0.8, 0.6]) + np.float32([0.0, 0.1, 0.2]), 0, 1)


def disc_matte() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return ((((yy - H / 2) ** 2 + (xx - W / 2) ** 2) < 14 ** 2) * 255).astype(np.uint8)


def write_seq(folder, frames, ext: str, dtype: str, start: int = 0, prefix: str = "", alpha=None):
    folder.mkdir(parents=True, exist_ok=True)
    for n, f in enumerate(frames):
        if dtype == "uint8":
            img = np.rint(f * 255).astype(np.uint8)
        elif dtype == "uint16":
            img = np.rint(f * 65535).astype(np.uint16)
        else:
            img = f.astype(dtype)
        a = None if alpha is None else alpha.astype(img.dtype)
        media.write_image(folder / f"{prefix}{n + start:04d}{ext}", img, alpha=a)
    return folder


def read_raw(path):
    """(RGB or RGBA at stored depth, in RGB order)."""
    rgb, alpha = media.read_plate(path)
    return rgb if alpha is None else np.concatenate([rgb, alpha[:, :, None]], axis=2)


def matted_plate(tmp_path, n: int):
    """An 8-bit plate of ``n`` frames, its first frame restyled as the key, and a disc matte."""
    frames = [scene(i) for i in range(n)]
    plate = write_seq(tmp_path / "plate", frames, ".png", "uint8")
    keys = write_seq(tmp_path / "keys", [restyle(frames[0])], ".png", "uint8")
    matte = tmp_path / "matte.png"
    media.write_image(matte, np.repeat(disc_matte()[:, :, None], 3, axis=2))
    return plate, keys, matte


def run(*args):
    assert main(["--progress", "quiet", "propagate", *map(str, args)]) == 0


def test_a_matte_keeps_the_plate_exactly_outside_and_restyles_inside(tmp_path):
    frames = [scene(i) for i in range(N)]
    plate = write_seq(tmp_path / "plate", frames, ".png", "uint8")
    keys = write_seq(tmp_path / "keys", [restyle(frames[0]), restyle(frames[N - 1])], ".png", "uint8")
    (keys / "0001.png").rename(keys / f"{N - 1:04d}.png")
    matte = tmp_path / "matte.png"
    media.write_image(matte, np.repeat(disc_matte()[:, :, None], 3, axis=2))
    run(plate, "--keys", keys, "-o", tmp_path / "out", "--matte", matte)
    m = disc_matte() > 0
    for i in range(N):
        out = media.read_image(tmp_path / "out" / f"{i:04d}.png")
        src = media.read_image(plate / f"{i:04d}.png")
        assert np.array_equal(out[~m], src[~m])  # the plate's pixels, exactly
        inside = np.abs(out[m].astype(int) - np.rint(restyle(frames[i]) * 255)[m]).mean()
        assert inside < 12, (i, inside)  # restyled inside (the plate differs by ~100 levels there)
    # with --alpha: RGBA, alpha = the matte, colour = the restyled frame
    run(plate, "--keys", keys, "-o", tmp_path / "rgba", "--matte", matte, "--alpha")
    out = read_raw(tmp_path / "rgba" / "0003.png")
    assert out.shape == (H, W, 4) and out.dtype == np.uint8
    assert np.array_equal(out[:, :, 3], disc_matte())


def test_a_feathered_matte_is_soft_at_the_edge_only(tmp_path):
    plate, keys, matte = matted_plate(tmp_path, 4)
    run(plate, "--keys", keys, "-o", tmp_path / "out", "--matte", matte, "--matte-feather", "6")
    out = media.read_image(tmp_path / "out" / "0002.png").astype(int)
    src = media.read_image(plate / "0002.png").astype(int)
    far = cv2.dilate(disc_matte(), np.ones((25, 25), np.uint8)) == 0
    assert np.array_equal(out[far], src[far])
    edge = (cv2.dilate(disc_matte(), np.ones((5, 5), np.uint8)) > 0) & (disc_matte() == 0)
    assert np.abs(out[edge] - src[edge]).mean() > 3  # the feather reaches outside the matte


def test_sixteen_bit_plates_stay_sixteen_bit(tmp_path):
    frames = [scene(i) for i in range(5)]
    plate = write_seq(tmp_path / "plate", frames, ".png", "uint16")
    keys = write_seq(tmp_path / "keys", [restyle(frames[0]), restyle(frames[4])], ".png", "uint16")
    (keys / "0001.png").rename(keys / "0004.png")
    run(plate, "--keys", keys, "-o", tmp_path / "out")
    out = read_raw(tmp_path / "out" / "0002.png")
    assert out.dtype == np.uint16 and out.shape == (H, W, 3)
    assert np.count_nonzero(out % 257) > out.size // 2  # finer than 8 bits: not an 8-bit image scaled up
    key = read_raw(tmp_path / "out" / "0000.png")
    assert np.array_equal(key, read_raw(keys / "0000.png"))  # a key frame comes back exactly
    ref = np.rint(restyle(frames[2]) * 65535)
    assert np.abs(out.astype(float) - ref).mean() < 12 * 257


def test_a_linear_exr_plate_round_trips_and_keeps_half_float_and_alpha(tmp_path):
    from rerender.colour import srgb_decode

    lin = [srgb_decode(scene(i)) * np.float32(1.5) for i in range(5)]  # highlights above 1.0
    alpha = np.full((H, W), 0.75, np.float32)
    plate = write_seq(tmp_path / "plate", lin, ".exr", "float16", start=1001, prefix="shot_v001.", alpha=alpha)
    keys = write_seq(tmp_path / "keys", [restyle(scene(0))], ".png", "uint8")
    black = tmp_path / "black.png"
    media.write_image(black, np.zeros((H, W, 3), np.uint8))
    # nothing matted: every pixel comes back bit-exact, at half float, with the plate's alpha
    run(plate, "--keys", keys, "-o", tmp_path / "same", "--matte", black, "--key-numbering", "index")
    for n in range(5):
        out = read_raw(tmp_path / "same" / f"shot_v001_rerender.{1001 + n}.exr")
        src = read_raw(plate / f"shot_v001.{1001 + n}.exr")
        assert out.dtype == np.float16 and out.shape == (H, W, 4)
        assert np.array_equal(out, src)
    # restyled everywhere: a key frame in linear EXR comes back within half-float precision
    run(plate, "--keys", keys, "-o", tmp_path / "out", "--key-numbering", "index")
    out = read_raw(tmp_path / "out" / "shot_v001_rerender.1001.exr")
    expected = srgb_decode(np.rint(restyle(scene(0)) * 255) / 255)
    assert out.dtype == np.float16
    assert np.allclose(out[:, :, :3].astype(np.float32), expected, rtol=2e-3, atol=2e-4)
    assert np.array_equal(out[:, :, 3], alpha.astype(np.float16))
    # a propagated frame is restyled (in linear light), not the plate
    mid = read_raw(tmp_path / "out" / "shot_v001_rerender.1003.exr")[:, :, :3].astype(np.float32)
    want = srgb_decode(restyle(scene(2)))
    assert np.abs(mid - want).mean() < 0.05 < np.abs(mid - lin[2]).mean()


def test_premultiplied_alpha_in_exr_with_a_matte(tmp_path):
    plate, keys, matte = matted_plate(tmp_path, 3)
    run(plate, "--keys", keys, "-o", tmp_path / "o" / "shot.####.exr", "--matte", matte, "--alpha")
    out = read_raw(tmp_path / "o" / "shot.0000.exr")
    assert out.shape == (H, W, 4) and out.dtype == np.float16  # an 8-bit plate: half float is plenty
    a = out[:, :, 3]
    assert np.array_equal(a, (disc_matte().astype(np.float32) / 255).astype(np.float16))
    assert (out[a == 0, :3] == 0).all()  # premultiplied: no colour where alpha is 0
    key = media.read_image(keys / "0000.png").astype(np.float32) / 255  # display-referred, as the plate
    assert np.allclose(out[a == 1, :3].astype(np.float32), key[a == 1], atol=1e-3)


@pytest.mark.parametrize("args, message", [
    (["--alpha"], "needs a matte"),
    (["--matte", "{missing}"], "does not exist"),
    (["--matte", "{small}"], "aspect ratio"),
    (["--matte", "{short}"], "frames"),
    (["--matte-feather", "-1", "--matte", "{ok}"], "matte_feather"),
])
def test_bad_matte_options_are_named(tmp_path, capsys, args, message):
    frames = [scene(i) for i in range(3)]
    plate = write_seq(tmp_path / "plate", frames, ".png", "uint8")
    keys = write_seq(tmp_path / "keys", [restyle(frames[0])], ".png", "uint8")
    media.write_image(tmp_path / "small.png", np.zeros((10, 30, 3), np.uint8))
    write_seq(tmp_path / "short", frames[:2], ".png", "uint8")
    media.write_image(tmp_path / "ok.png", np.zeros((H, W, 3), np.uint8))
    paths = {"missing": tmp_path / "nope.png", "small": tmp_path / "small.png", "short": tmp_path / "short",
             "ok": tmp_path / "ok.png"}
    args = [a.format(**paths) for a in args]
    code = main(["--progress", "quiet", "propagate", str(plate), "--keys", str(keys), "-o", str(tmp_path / "out"),
                 *args])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_alpha_needs_an_image_output(tmp_path, capsys):
    frames = [scene(i) for i in range(3)]
    plate = write_seq(tmp_path / "plate", frames, ".png", "uint8")
    keys = write_seq(tmp_path / "keys", [restyle(frames[0])], ".png", "uint8")
    media.write_image(tmp_path / "m.png", np.zeros((H, W, 3), np.uint8))
    for out in ("out.mp4", "o/shot.####.jpg"):
        code = main(["--progress", "quiet", "propagate", str(plate), "--keys", str(keys), "-o", str(tmp_path / out),
                     "--matte", str(tmp_path / "m.png"), "--alpha"])
        assert code == 2
        assert "alpha" in capsys.readouterr().err
