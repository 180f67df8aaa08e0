"""An output may replace only files that an earlier rerender run of the same output wrote (issue 21):
anything else is refused before any work, with a named error that says how to proceed, unless
``--overwrite``. The record of what a run wrote is kept in its work directory's manifest."""
from __future__ import annotations

import hashlib

import pytest

from _clips import write_test_video
from _stylised_clip import clip, run_propagate_cli, write_clip_and_keys


@pytest.fixture
def shot(tmp_path):
    inp, keys = write_clip_and_keys(tmp_path, clip(6, 32, 48), (0, 5))
    return tmp_path, inp, keys


def propagate(shot, out, capsys, *extra):
    code = run_propagate_cli(*shot, out, *extra)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_a_users_file_in_the_output_folder_is_not_replaced(shot, capsys):
    tmp = shot[0]
    photos = tmp / "photos"
    photos.mkdir()
    (photos / "0003.png").write_bytes(b"the user's own photo")
    code, err = propagate(shot, photos, capsys)
    assert code == 2
    assert f"{photos / '0003.png'}" in err and "--overwrite" in err, err
    assert (photos / "0003.png").read_bytes() == b"the user's own photo"
    assert sorted(p.name for p in photos.iterdir()) == ["0003.png"]
    assert not (tmp / "photos.work").exists()  # refused before any work
    code, err = propagate(shot, photos, capsys, "--overwrite")
    assert code == 0, err
    assert (photos / "0003.png").read_bytes() != b"the user's own photo"


def test_rerunning_into_the_same_output_replaces_its_own_files(shot, capsys):
    tmp = shot[0]
    out = tmp / "o"
    assert propagate(shot, out, capsys)[0] == 0
    before = {p.name: sha(p) for p in out.iterdir()}
    code, err = propagate(shot, out, capsys)
    assert code == 0, err
    assert {p.name: sha(p) for p in out.iterdir()} == before
    # a frame the user edited since is theirs now
    (out / "0002.png").write_bytes(b"retouched")
    code, err = propagate(shot, out, capsys)
    assert code == 2 and str(out / "0002.png") in err and "--overwrite" in err, err
    assert (out / "0002.png").read_bytes() == b"retouched"


def test_files_of_a_run_whose_work_directory_is_gone_are_refused(shot, capsys):
    import shutil

    tmp = shot[0]
    out = tmp / "o"
    assert propagate(shot, out, capsys)[0] == 0
    shutil.rmtree(tmp / "o.work")
    code, err = propagate(shot, out, capsys)
    assert code == 2 and "--overwrite" in err, err


def test_pattern_output_refuses_a_file_it_would_replace_but_ignores_others(shot, capsys):
    tmp = shot[0]
    folder = tmp / "render"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    (folder / "shot.0004.png").write_bytes(b"mine")
    code, err = propagate(shot, folder / "shot.####.png", capsys)
    assert code == 2 and str(folder / "shot.0004.png") in err, err
    (folder / "shot.0004.png").unlink()
    code, err = propagate(shot, folder / "shot.####.png", capsys)
    assert code == 0, err
    assert (folder / "notes.txt").read_text() == "keep"


def test_an_existing_video_not_written_by_rerender_is_refused(shot, capsys):
    tmp = shot[0]
    video = tmp / "film.mp4"
    write_test_video(video, clip(4, 32, 48))
    before = sha(video)
    code, err = propagate(shot, video, capsys)
    assert code == 2 and str(video) in err and "--overwrite" in err, err
    assert sha(video) == before
    code, err = propagate(shot, video, capsys, "--overwrite")
    assert code == 0, err
    written = sha(video)
    assert written != before
    code, err = propagate(shot, video, capsys)  # its own video: replaced (here: identical) without asking
    assert code == 0, err
    assert sha(video) == written


def test_a_stopped_write_lets_only_its_own_files_be_finished(shot, capsys, monkeypatch):
    """A run killed while writing its output may finish those files; the same names elsewhere stay
    the user's."""
    import rerender.output as output

    tmp = shot[0]
    out, other = tmp / "o", tmp / "other"
    work = tmp / "w"

    def killed(job, target, progress, *_):
        (target / "0000.png").parent.mkdir(parents=True, exist_ok=True)
        (target / "0000.png").write_bytes(b"half")  # as a kill mid-write leaves it (were writes not atomic)
        raise KeyboardInterrupt

    monkeypatch.setattr(output, "_write", killed)
    assert propagate(shot, out, capsys, "--work-dir", str(work))[0] == 130
    monkeypatch.undo()
    other.mkdir()
    (other / "0000.png").write_bytes(b"user's")
    code, err = propagate(shot, other, capsys, "--work-dir", str(work))
    assert code == 2 and str(other / "0000.png") in err, err
    code, err = propagate(shot, out, capsys, "--work-dir", str(work))
    assert code == 0, err
    assert (out / "0000.png").read_bytes() != b"half"
