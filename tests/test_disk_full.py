"""A write that fails for lack of space (issue 21): the error names the file and the cause, the
partial file is removed, the command exits non-zero without a traceback. The disk is not filled:
the file-size limit (RLIMIT_FSIZE, which makes a write fail with EFBIG) stands in for it in a
subprocess, and a monkeypatched writer raises ENOSPC in process."""
from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from _stylised_clip import clip, write_clip_and_keys, write_fast_config
from rerender import files
from rerender.cli import main


def run_limited(code: str, limit: int) -> subprocess.CompletedProcess:
    """Python code in a fresh process whose files may not grow beyond ``limit`` bytes."""
    prelude = f"import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("ext, dtype", [(".png", "uint8"), (".png", "uint16"), (".exr", "float32"), (".tif", "uint8")])
def test_an_image_too_large_for_the_room_left_names_the_file_and_leaves_nothing(tmp_path, ext, dtype):
    target = tmp_path / f"noise{ext}"
    out = run_limited(
        "import numpy as np\nfrom rerender.media import write_image\n"
        f"img = (np.random.default_rng(0).random((200, 200, 3)) * 200).astype('{dtype}')\n"
        f"try:\n    write_image({str(target)!r}, img)\n"
        "except OSError as e:\n    print(type(e).__name__, e.errno, e)\n", limit=8192)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith(f"NoRoomError {errno.EFBIG} {target}: cannot write this file: File too large"), out.stdout
    assert list(tmp_path.iterdir()) == []  # no partial file, no temporary


def test_a_video_too_large_for_the_room_left_names_the_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "film.mp4"
    out = run_limited(
        "import numpy as np\nfrom rerender.media import write_video\n"
        "frames = [(np.random.default_rng(i).random((128, 128, 3)) * 255).astype(np.uint8) for i in range(20)]\n"
        f"try:\n    write_video(frames, {str(target)!r}, 24)\n"
        "except OSError as e:\n    print(type(e).__name__, e.errno, e)\n", limit=20000)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith(f"NoRoomError {errno.EFBIG} {target}: cannot write this file: File too large"), out.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_job_whose_work_directory_fills_up_exits_non_zero_naming_the_file(tmp_path):
    inp, keys = write_clip_and_keys(tmp_path, clip(6, 64, 96), (0, 5))
    out = run_limited("import sys\nfrom rerender.cli import main\n"
                      f"sys.exit(main(['propagate', {str(inp)!r}, '--keys', {str(keys)!r}, '-o', "
                      f"{str(tmp_path / 'o')!r}, '--progress', 'quiet']))\n", limit=4096)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "requested and" not in out.stderr
    assert "cannot write this file: File too large" in out.stderr, out.stderr
    named = out.stderr.split("error: ", 1)[1].split(":", 1)[0]
    assert named.startswith(str(tmp_path / "o.work")) and not os.path.exists(named), out.stderr
    assert not [p for p in (tmp_path / "o.work").rglob("*") if files.is_own_temporary(p.name)]


def test_a_full_disk_while_writing_the_output_names_the_file(tmp_path, monkeypatch, capsys):
    inp, keys = write_clip_and_keys(tmp_path, clip(6, 64, 96), (0, 5))
    real = files.write_all

    def full_for_outputs(path, data):
        if "o.work" not in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, data)

    monkeypatch.setattr(files, "write_all", full_for_outputs)
    import rerender.media.images as images
    monkeypatch.setattr(images, "write_all", full_for_outputs)
    code = main(["propagate", str(inp), "--keys", str(keys), "-o", str(tmp_path / "o"), "--progress", "quiet",
                 "--config", str(write_fast_config(tmp_path))])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"{tmp_path / 'o' / '0000.png'}: cannot write this file: No space left on device" in err, err
    assert list((tmp_path / "o").iterdir()) == []


