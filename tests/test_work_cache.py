"""The work directory is a cache (issue 21): an entry that is unreadable, or no longer what rerender
wrote (its size and BLAKE2b digest are recorded when it is written and checked when it is read), is
recomputed and said so on stderr; the result is the same bytes as a clean run. A damaged manifest is
refused with its path and the fix."""
from __future__ import annotations

import shutil

import pytest

from _stylised_clip import clip, write_clip_and_keys, write_fast_config
from rerender.cli import main


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A shot and the output of a clean run with its intermediates kept."""
    tmp = tmp_path_factory.mktemp("clean")
    inp, keys = write_clip_and_keys(tmp, clip(7, 32, 48), (0, 6))
    write_fast_config(tmp)
    assert run(tmp, tmp / "o")[0] == 0
    return tmp


def run(tmp, out, *extra):
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["propagate", str(tmp / "input"), "--keys", str(tmp / "keys"), "-o", str(out), "--progress",
                     "quiet", "--config", str(tmp / "fast.yaml"), "--keep-intermediates", *extra])
    assert "Traceback" not in err.getvalue()
    return code, err.getvalue()


@pytest.fixture
def shot(clean, tmp_path):
    """A copy of the clean run (its output and work directory) to damage."""
    shutil.copytree(clean / "o", tmp_path / "o")
    shutil.copytree(clean / "o.work", tmp_path / "o.work")
    for name in ("input", "keys", "fast.yaml"):
        (shutil.copytree if (clean / name).is_dir() else shutil.copy)(clean / name, tmp_path / name)
    return tmp_path


def outputs(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def rerun_gives_the_clean_output(clean, shot, damaged, *extra):
    code, err = run(shot, shot / "o", *extra)
    assert code == 0, err
    assert str(damaged) in err and err.count(str(damaged)) == 1, err
    assert outputs(shot / "o") == outputs(clean / "o")


def segment(shot):
    return next(p for p in (shot / "o.work" / "segments").iterdir() if (p / "fwd").is_dir())


def test_a_truncated_candidate_is_recomputed(clean, shot):
    step = sorted((segment(shot) / "fwd").glob("0*.npz"))[2]
    step.write_bytes(step.read_bytes()[:100])
    (shot / "o.work" / "out" / "0003.png").unlink()  # the segment has work left
    rerun_gives_the_clean_output(clean, shot, step)


def test_a_garbage_pass_state_is_recomputed(clean, shot):
    fwd = segment(shot) / "fwd"
    sorted(fwd.glob("0*.npz"))[-1].unlink()  # a stopped pass: its last step missing, a state left
    (fwd / "state.npz").write_bytes(b"\x93NUMPY garbage" * 50)
    (shot / "o.work" / "out" / "0003.png").unlink()
    rerun_gives_the_clean_output(clean, shot, fwd / "state.npz")


@pytest.mark.parametrize("damage", ["truncate", "delete", "copy over"])
def test_a_damaged_decoded_frame_is_decoded_again(clean, shot, damage):
    frames = shot / "o.work" / "frames"
    if damage == "truncate":
        (frames / "0003.png").write_bytes((frames / "0003.png").read_bytes()[:50])
    elif damage == "delete":
        (frames / "0003.png").unlink()
    else:  # another frame copied over it, while its segment still has work
        shutil.copy(frames / "0002.png", frames / "0003.png")
        shutil.rmtree(shot / "o.work" / "segments")
    rerun_gives_the_clean_output(clean, shot, frames / "0003.png")


def test_a_replaced_output_frame_in_the_work_directory_is_recomputed(clean, shot):
    out = shot / "o.work" / "out"
    shutil.copy(out / "0002.png", out / "0003.png")
    rerun_gives_the_clean_output(clean, shot, out / "0003.png")


def test_swapped_flows_are_recomputed(clean, shot):
    dis = shot / "o.work" / "flow" / "dis"
    a, b = dis / "000002_000003.npz", dis / "000003_000002.npz"
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)
    shutil.rmtree(shot / "o.work" / "segments")
    code, err = run(shot, shot / "o")
    assert code == 0, err
    assert str(a) in err and str(b) in err
    assert outputs(shot / "o") == outputs(clean / "o")


def test_flows_of_an_older_work_directory_are_read_not_recomputed(clean, shot):
    # work directories before the zlib flow codec hold 16-bit PNG flows: a resumed job reads them
    # (the same fixed-point values) and gives the clean run's bytes without recomputing them
    import cv2
    import numpy as np

    from rerender.files import save_npz
    from rerender.packing import decode_flow

    dis = shot / "o.work" / "flow" / "dis"
    stored = sorted(dis.glob("*.npz"))
    assert stored
    for path in stored:
        flow = decode_flow(dict(np.load(path)))
        q = np.rint(flow * 32).astype(np.int32) + 32768
        ok, png = cv2.imencode(".png", np.concatenate([q[..., 0], q[..., 1]]).astype(np.uint16))
        save_npz(path, png=png.reshape(-1), step_log2=np.int32(5))
    shutil.rmtree(shot / "o.work" / "segments")
    code, err = run(shot, shot / "o")
    assert code == 0, err
    assert outputs(shot / "o") == outputs(clean / "o")
    assert all("png" in np.load(path).files for path in stored)  # read as they were, not rewritten


@pytest.mark.parametrize("text", ['{"frames": "x"}', "{not json", "[1, 2]"])
def test_a_broken_manifest_is_refused_with_its_path_and_the_fix(shot, text):
    manifest = shot / "o.work" / "manifest.json"
    manifest.write_text(text)
    code, err = run(shot, shot / "o")
    assert code == 2
    assert f"{manifest}:" in err and f"delete {manifest}" in err, err
    assert manifest.read_text() == text


def test_a_damaged_matte_is_decoded_again(tmp_path):
    import numpy as np

    from rerender import media

    inp, keys = write_clip_and_keys(tmp_path, clip(7, 32, 48), (0, 6))
    write_fast_config(tmp_path)
    matte = np.zeros((32, 48, 3), np.uint8)
    matte[8:24, 10:40] = 255
    media.write_image(tmp_path / "matte.png", matte)
    assert run(tmp_path, tmp_path / "o", "--matte", str(tmp_path / "matte.png"))[0] == 0
    clean = outputs(tmp_path / "o")
    damaged = tmp_path / "o.work" / "mattes" / "0003.png"
    damaged.write_bytes(damaged.read_bytes()[:40])
    code, err = run(tmp_path, tmp_path / "o", "--matte", str(tmp_path / "matte.png"))
    assert code == 0, err
    assert err.count(str(damaged)) == 1, err
    assert outputs(tmp_path / "o") == clean


def test_a_damaged_frame_of_a_video_is_decoded_again_to_the_same_pixels(tmp_path):
    from _clips import write_test_video
    from _stylised_clip import stylise

    from rerender import media

    frames = clip(9, 32, 48)
    write_test_video(tmp_path / "clip.mp4", frames)
    keys = tmp_path / "keys"
    for k in (0, 8):
        media.write_image(keys / f"{k:04d}.png", stylise(frames[k]))
    write_fast_config(tmp_path)

    def go():
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["propagate", str(tmp_path / "clip.mp4"), "--keys", str(keys), "-o", str(tmp_path / "o"),
                         "--progress", "quiet", "--config", str(tmp_path / "fast.yaml")])
        return code, err.getvalue()

    assert go()[0] == 0
    decoded = (tmp_path / "o.work" / "frames" / "0005.png").read_bytes()
    clean = outputs(tmp_path / "o")
    (tmp_path / "o.work" / "frames" / "0005.png").write_bytes(decoded[:60])
    code, err = go()
    assert code == 0 and "frames/0005.png" in err, err
    assert (tmp_path / "o.work" / "frames" / "0005.png").read_bytes() == decoded  # a seek gives the same pixels
    assert outputs(tmp_path / "o") == clean
