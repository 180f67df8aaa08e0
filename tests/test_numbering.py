"""VFX sequence conventions: outputs keep the input's naming, padding and start frame (or follow a
pattern), key folders may count frame numbers or indices (ambiguity refused), videos keep fractional
fps and timecode."""
from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
import pytest

import rerender.media as media
from _clips import write_sequence, write_test_video
from _stylised_clip import clip, stylise, write_fast_config
from rerender.cli import main

N = 12


@pytest.fixture
def plate(tmp_path):
    """shot_v001.1001.png ... shot_v001.1012.png, keys named by frame number."""
    frames = clip(N, 32, 48)
    write_sequence(tmp_path / "plate", frames, name="shot_v001.{:04d}", start=1001)
    return tmp_path, frames


def keys_named(folder: Path, frames, names: dict[int, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in names.items():
        media.write_image(folder / name, stylise(frames[i]))
    return folder


def test_a_1001_sequence_comes_back_1001_with_the_same_padding(plate, capsys):
    tmp, frames = plate
    keys = keys_named(tmp / "keys", frames, {0: "shot_v001.1001.png", 11: "1012.png"})
    assert main(["propagate", str(tmp / "plate"), "--keys", str(keys), "-o", str(tmp / "out"),
                 "--config", str(write_fast_config(tmp))]) == 0
    assert "frame numbers (1001..1012)" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp / "out").iterdir()) == [f"shot_v001_rerender.{n}.png" for n in range(1001, 1013)]
    assert np.array_equal(media.read_image(tmp / "out" / "shot_v001_rerender.1012.png"), stylise(frames[11]))


def test_an_output_pattern_sets_name_padding_and_format(plate):
    tmp, frames = plate
    keys = keys_named(tmp / "keys", frames, {0: "1001.png", 11: "1012.png"})
    assert main(["propagate", str(tmp / "plate"), "--keys", str(keys), "-o", str(tmp / "o" / "shot.######.tif"),
                 "--frames", "0:4", "--config", str(write_fast_config(tmp))]) == 0
    assert sorted(p.name for p in (tmp / "o").glob("*.tif")) == [f"shot.{n:06d}.tif" for n in range(1001, 1005)]
    assert (tmp / "o" / "shot.work" / "manifest.json").exists()
    assert np.array_equal(media.read_image(tmp / "o" / "shot.001001.tif"), stylise(frames[0]))  # lossless TIFF


def test_key_numbering_that_fits_both_ways_is_refused_until_said(tmp_path, capsys):
    frames = clip(N, 32, 48)
    write_sequence(tmp_path / "plate", frames, name="f{:03d}", start=1)  # numbered 1..12
    keys = keys_named(tmp_path / "keys", frames, {0: "0001.png", 10: "0011.png"})  # frames 1 and 11?
    code = main(["propagate", str(tmp_path / "plate"), "--keys", str(keys), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "fit both" in err and "--key-numbering" in err
    assert not (tmp_path / "o").exists()
    assert main(["propagate", str(tmp_path / "plate"), "--keys", str(keys), "-o", str(tmp_path / "o"),
                 "--key-numbering", "frame", "--config", str(write_fast_config(tmp_path))]) == 0
    # as frame numbers, 0001.png is the first frame (index 0): it comes back unchanged
    assert np.array_equal(media.read_image(tmp_path / "o" / "f_rerender001.png"), stylise(frames[0]))
    assert main(["propagate", str(tmp_path / "plate"), "--keys", str(keys), "-o", str(tmp_path / "o2"),
                 "--key-numbering", "index", "--config", str(write_fast_config(tmp_path))]) == 0
    assert np.array_equal(media.read_image(tmp_path / "o2" / "f_rerender002.png"), stylise(frames[0]))  # index 1 = f002
    bad = keys_named(tmp_path / "bad", frames, {0: "0500.png"})
    assert main(["propagate", str(tmp_path / "plate"), "--keys", str(bad), "-o", str(tmp_path / "o3"),
                 "--key-numbering", "frame"]) == 2
    assert "key frame number 500 is not a frame" in capsys.readouterr().err


def test_numbering_of_names():
    n = media.sequence_numbering([Path(f"shot_v001.{i}.exr") for i in range(1001, 1004)])
    assert (n.prefix, n.padding, n.suffix, n.numbers) == ("shot_v001.", 4, ".exr", (1001, 1002, 1003))
    assert media.sequence_numbering([Path("a.png"), Path("b.png")]) is None
    assert media.sequence_numbering([Path("x1.png"), Path("y2.png")]) is None
    assert media.sequence_numbering([Path("f1.png"), Path("f2.png"), Path("f10.png")]).padding == 1
    paths = media.output_frame_paths("out", range(0, 2), media.sequence_numbering([Path("p_7_v2.jpg"), Path("p_8_v2.jpg")]))
    assert [p.name for p in paths.values()] == ["p_rerender_7_v2.png", "p_rerender_8_v2.png"]
    assert [p.name for p in media.output_frame_paths("out", range(3, 5), None).values()] == ["0003.png", "0004.png"]
    with pytest.raises(media.MediaError, match="image extension"):
        media.output_frame_paths("out/x.####.mov", range(2), None)


@pytest.mark.parametrize("rate, timecode, start, expected", [
    (fractions.Fraction(24000, 1001), "01:00:10:05", 5, "01:00:10:10"),
    (fractions.Fraction(30000, 1001), "00:00:59;28", 3, "00:01:00;03"),  # drop-frame skips ;00 and ;01
])
def test_fractional_fps_and_timecode_survive(tmp_path, rate, timecode, start, expected):
    frames = clip(16, 32, 48)
    src = tmp_path / "in.mov"
    write_test_video(src, frames, fps=rate, timecode=timecode)
    info = media.probe(src)
    assert info.fps == rate and info.timecode == timecode
    keys = keys_named(tmp_path / "keys", frames, {k: f"{k:04d}.png" for k in (0, 15)})
    out = tmp_path / "out.mov"
    assert main(["--progress", "quiet", "propagate", str(src), "--keys", str(keys), "-o", str(out), "--frames",
                 f"{start}:16", "--config", str(write_fast_config(tmp_path))]) == 0
    got = media.probe(out)
    assert got.fps == rate and got.frame_count == 16 - start and got.timecode == expected
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == rate
