"""The rerender command line: propagate / metrics / demo, JSON progress, errors without tracebacks."""
import json
import subprocess
import sys

import numpy as np
import pytest

import rerender.media as media
from _clips import decode_all
from _stylised_clip import clip, fast_config, write_clip_and_keys
from rerender.cli import main


@pytest.fixture
def small(tmp_path):
    frames = clip(12, 32, 48)
    inp, keys = write_clip_and_keys(tmp_path, frames, (0, 11))
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("search_vote_iters: 3\npatchmatch_iters: 2\n")
    return tmp_path, inp, keys, cfg


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_propagate_with_json_progress(small, capsys):
    tmp, inp, keys, cfg = small
    out = tmp / "out dir"
    code = main(["propagate", str(inp), "--keys", str(keys), "-o", str(out), "--config", str(cfg),
                 "--progress", "json"])
    assert code == 0
    events = json_lines(capsys.readouterr().out)
    stages = [e["stage"] for e in events if e["event"] == "stage"]
    assert stages == ["decode", "propagate", "blend", "write"]  # flows are computed by the passes
    prog = [e for e in events if e["event"] == "progress" and e["stage"] == "propagate"]
    assert prog[-1]["done"] == prog[-1]["total"] == 2 * 10 and prog[-1]["eta"] == 0
    assert all(e["eta"] is None or e["eta"] >= 0 for e in prog)
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert any(m.startswith("work directory ") and "per frame" in m for m in logs)
    assert events[-1] == {"event": "done", "output": str(out), "files": [str(out / f"{i:04d}.png") for i in range(12)]}
    assert sum(e["event"] == "done" for e in events) == 1
    assert len(list(out.glob("*.png"))) == 12


def test_propagate_human_mode_and_video_output(small, capsys):
    tmp, inp, keys, cfg = small
    code = main(["propagate", str(inp), "--keys", str(keys), "-o", str(tmp / "r.mp4"), "--config", str(cfg),
                 "--work-dir", str(tmp / "work"), "--frames", "2:12"])
    assert code == 0
    err = capsys.readouterr().err
    assert "propagate" in err and "wrote" in err
    frames, rate = decode_all(tmp / "r.mp4")
    assert len(frames) == 10 and rate == 24  # image sequences default to 24 fps
    assert (tmp / "work" / "manifest.json").exists()


@pytest.mark.parametrize("mode", ["human", "json"])
def test_user_errors_exit_nonzero_without_traceback(small, capsys, mode):
    tmp, inp, keys, cfg = small
    code = main(["--progress", mode, "propagate", str(tmp / "nope.mp4"), "--keys", str(keys), "-o",
                 str(tmp / "o")])
    assert code == 2
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err + cap.out
    if mode == "json":
        assert json_lines(cap.out)[-1]["event"] == "error"
        assert "nope.mp4" in json_lines(cap.out)[-1]["message"]
    else:
        assert cap.err.startswith("rerender: error: ") and "nope.mp4" in cap.err


def test_config_and_usage_errors(small, capsys):
    tmp, inp, keys, cfg = small
    bad = tmp / "bad.yaml"
    bad.write_text("guide_weight: 3\n")
    assert main(["propagate", str(inp), "--keys", str(keys), "-o", str(tmp / "o"), "--config", str(bad)]) == 2
    assert "guide_weight" in capsys.readouterr().err
    assert main(["propagate", str(inp), "-o", str(tmp / "o")]) == 2
    assert "--keys" in capsys.readouterr().err
    assert main(["--progress", "json", "propagate", str(inp), "--keys", str(keys), "-o", str(tmp / "o"),
                 "--frames", "9:3"]) == 2
    assert "--frames" in json_lines(capsys.readouterr().out)[-1]["message"]
    assert main(["demo", "--frames", "1", "-o", str(tmp / "d")]) == 2


def test_metrics_command(small, capsys):
    tmp, inp, keys, cfg = small
    report = tmp / "m.json"
    assert main(["metrics", str(inp), str(inp), "--json", str(report)]) == 0
    assert "warping error" in capsys.readouterr().out
    data = json.loads(report.read_text())
    assert len(data["per_pair"]) == 11 and data["mean"] < 2e-3


def test_module_entry_point_help():
    res = subprocess.run([sys.executable, "-m", "rerender", "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    for word in ("propagate", "metrics", "demo", "--progress"):
        assert word in res.stdout
    res = subprocess.run([sys.executable, "-m", "rerender", "propagate", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0 and "--poisson" in res.stdout and "OUT.work" in res.stdout
    # propagate never imports the diffusion stage (torch)
    code = ("import sys; from rerender.cli import main; "
            "rc = main(['--progress', 'quiet', 'propagate', 'missing.mp4', '--keys', 'k', '-o', 'o']); "
            "print(rc, 'torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "2 False"


def test_demo_writes_result_preview_and_sheet(tmp_path):
    from rerender.demo import run_demo

    out = tmp_path / "démo"
    run_demo(out, frames=7, key_every=3, config=fast_config(), size=(96, 144))
    assert len(list((out / "frames").glob("*.png"))) == 7
    frames, rate = decode_all(out / "result.mp4")
    assert len(frames) == 7 and rate == 24
    preview, _ = decode_all(out / "preview.mp4")
    assert preview[0].shape[1] == 2 * frames[0].shape[1]
    sheet = media.read_image(out / "contact_sheet.png")
    assert sheet.shape[0] > 2 * frames[0].shape[0]
    # the key frames are stylised, so the result differs from the input
    assert np.abs(media.read_image(out / "frames" / "0003.png").astype(int)
                  - media.read_image(out / "input" / "0003.png")).mean() > 10


def test_progress_json_protocol_is_thread_safe():
    import io
    import threading

    from rerender.progress import Progress

    buf = io.StringIO()
    p = Progress("json", stream_out=buf)
    with p.stage("propagate", 400) as bar:
        threads = [threading.Thread(target=lambda: [bar.update() for _ in range(100)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    p.log("héllo")
    p.error("bad thing")
    events = json_lines(buf.getvalue())
    assert events[0] == {"event": "stage", "stage": "propagate", "total": 400}
    done = [e["done"] for e in events if e["event"] == "progress"]
    assert done == list(range(1, 401))  # one line per update, in order, none lost or torn
    assert events[-2] == {"event": "log", "message": "héllo"}
    assert events[-1] == {"event": "error", "message": "bad thing"}
    with pytest.raises(ValueError, match="progress mode"):
        Progress("loud")
