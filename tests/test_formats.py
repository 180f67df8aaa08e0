"""The one table of formats (rerender.media.formats) agrees with what the readers and writers do: every
depth a row claims round-trips exactly, every other depth is refused by name, alpha is kept where a
row says so, and a video is encoded with the first encoder of its row that this PyAV build has."""
from __future__ import annotations

import av
import numpy as np
import pytest

from rerender import media
from rerender.media.formats import FORMATS

IMAGE_ROWS = [f for f in FORMATS.values() if f.kind == "image" and f.depths]
ALL_DEPTHS = ("uint8", "uint16", "float16", "float32")


def sample(dtype: str, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(1)
    if dtype.startswith("float"):
        return rng.random((6, 5, channels)).astype(dtype)
    top = 255 if dtype == "uint8" else 65535
    return rng.integers(0, top + 1, (6, 5, channels)).astype(dtype)


@pytest.mark.parametrize("fmt", IMAGE_ROWS, ids=lambda f: f.extension)
def test_every_depth_of_an_image_row_is_written_and_read_back(tmp_path, fmt):
    for dtype in ALL_DEPTHS:
        path = tmp_path / f"{dtype}{fmt.extension}"
        img = sample(dtype)
        if dtype not in fmt.depths:
            with pytest.raises(media.MediaError, match=f"cannot write {dtype} images as {fmt.extension}"):
                media.write_image(path, img)
            continue
        media.write_image(path, img)
        rgb, alpha = media.read_plate(path)
        assert rgb.dtype == img.dtype and alpha is None
        if fmt.extension not in (".jpg", ".jpeg", ".webp"):  # lossy
            np.testing.assert_array_equal(rgb, img)


@pytest.mark.parametrize("fmt", [f for f in IMAGE_ROWS if f.alpha], ids=lambda f: f.extension)
def test_rows_with_alpha_keep_it(tmp_path, fmt):
    dtype = fmt.depths[0]
    rgba = sample(dtype, 4)
    path = tmp_path / f"a{fmt.extension}"
    media.write_image(path, np.ascontiguousarray(rgba[:, :, :3]), alpha=np.ascontiguousarray(rgba[:, :, 3]))
    rgb, alpha = media.read_plate(path)
    np.testing.assert_array_equal(alpha, rgba[:, :, 3])


# (.ts/.m2ts/.mts, .mxf and .ogv are read but cannot be written with this PyAV build: no encoder of
# their rows is accepted by the muxer; left as they were)
@pytest.mark.parametrize("ext", [".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpeg", ".mpg", ".wmv", ".flv",
                                 ".gif", ".3gp"])
def test_a_video_row_is_written_in_its_container(tmp_path, ext):
    fmt = FORMATS[ext]
    path = tmp_path / f"v{ext}"
    assert media.write_video([sample("uint8")[:4, :4].copy() for _ in range(3)], path, 24) == 3
    with av.open(str(path)) as c:
        if fmt.muxer is not None:
            assert fmt.muxer in c.format.name.split(",")
        assert len(list(c.decode(video=0))) == 3


def test_grey_only_and_read_only_rows_are_refused_up_front():
    for ext in (".pgm", ".hdr"):
        with pytest.raises(media.MediaError, match=f"cannot write uint8 images as {ext}"):
            media.check_writable(f"x{ext}", "uint8")


def test_the_extension_lists_are_the_tables():
    assert media.IMAGE_EXTENSIONS == {e for e, f in FORMATS.items() if f.kind == "image"}
    assert media.VIDEO_EXTENSIONS == {e for e, f in FORMATS.items() if f.kind == "video"}
    assert all(media.is_video_path(f"x{e.upper()}") for e in media.VIDEO_EXTENSIONS)
