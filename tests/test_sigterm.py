"""SIGTERM (the Blender add-on's Cancel, a render farm's stop) is handled like Ctrl-C (issue 21.7):
the workers stop, the work directory's lock is released, finished intermediates stay, the exit
status is 143 with the interrupted message, and a rerun resumes to the bytes of an uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from _stylised_clip import clip, write_clip_and_keys


def command(inp: Path, keys: Path, out: Path, cfg: Path) -> list[str]:
    return [sys.executable, "-m", "rerender", "--progress", "json", "propagate", str(inp), "--keys", str(keys),
            "-o", str(out), "--config", str(cfg), "--workers", "1", "--threads", "1"]


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def test_sigterm_mid_job_exits_143_releases_the_lock_and_resumes_byte_identical(tmp_path):
    inp, keys = write_clip_and_keys(tmp_path, clip(24, 64, 96), (0, 23))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("search_vote_iters: 4\npatchmatch_iters: 2\n")
    out, work = tmp_path / "out", tmp_path / "out.work"

    proc = subprocess.Popen(command(inp, keys, out, cfg), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = 0
    for line in proc.stdout:  # stop once the propagation has finished a few frames, long before the end
        event = json.loads(line)
        if event.get("event") == "progress" and event.get("stage") == "propagate":
            done = event["done"]
            if done >= 3:
                proc.send_signal(signal.SIGTERM)
                break
    rest, err = proc.communicate(timeout=120)
    assert 3 <= done < 2 * 22, done
    assert proc.returncode == 143, (proc.returncode, err)
    assert "Traceback" not in err
    errors = [json.loads(x) for x in rest.splitlines() if x.strip() and json.loads(x)["event"] == "error"]
    assert errors and errors[-1]["message"].startswith("interrupted (intermediate results are kept")
    assert not (work / ".lock").exists()  # released: a rerun is not refused
    assert len(list((work / "frames").glob("*.png"))) == 24  # the finished stage is kept
    assert not out.exists() or len(list(out.glob("*.png"))) < 24

    resumed = subprocess.run(command(inp, keys, out, cfg), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    stages = [json.loads(x) for x in resumed.stdout.splitlines() if x.strip()]
    decode = [e for e in stages if e["event"] == "progress" and e["stage"] == "decode"]
    assert not decode or decode[0]["done"] == 24  # nothing decoded again

    ref = tmp_path / "ref"
    fresh = subprocess.run(command(inp, keys, ref, cfg), capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    assert len(outputs(ref)) == 24 and outputs(out) == outputs(ref)


def test_sigterm_while_waiting_for_another_stage_is_not_a_crash(tmp_path):
    """A second TERM during the clean-up is ignored (farm managers repeat it): still 143, no traceback."""
    inp, keys = write_clip_and_keys(tmp_path, clip(24, 64, 96), (0, 23))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("search_vote_iters: 4\npatchmatch_iters: 2\n")
    proc = subprocess.Popen(command(inp, keys, tmp_path / "o", cfg), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if json.loads(line).get("stage") == "propagate":
            proc.send_signal(signal.SIGTERM)
            proc.send_signal(signal.SIGTERM)
            break
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert not (tmp_path / "o.work" / ".lock").exists()
    assert os.path.isdir(tmp_path / "o.work" / "frames")


def test_the_blender_addons_cancel_stops_a_real_job_cleanly(tmp_path):
    """The add-on's Cancel (WorkerProcess.cancel: SIGTERM to the worker's group, SIGKILL after the
    grace period) ends a real ``rerender propagate`` by its handler: exit 143 well within the grace
    period, the lock released, the interrupted message as the job's error."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("rerender_addon_worker_sigterm",
                                                  Path(__file__).resolve().parents[1] / "blender_addon" / "worker.py")
    worker = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = worker
    spec.loader.exec_module(worker)

    inp, keys = write_clip_and_keys(tmp_path, clip(24, 64, 96), (0, 23))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("search_vote_iters: 4\npatchmatch_iters: 2\n")
    w = worker.WorkerProcess(command(inp, keys, tmp_path / "o", cfg))
    w.start()
    progress = worker.JobProgress()
    deadline = time.monotonic() + 60
    while progress.stage != "propagate" and time.monotonic() < deadline:
        for e in w.events(timeout=0.2):
            progress.feed(e)
    assert progress.stage == "propagate" and not w.finished()
    w.cancel(grace=10.0)
    for e in w.events(timeout=1.0):
        progress.feed(e)
    assert w.returncode == 143, w.returncode  # handled, not killed
    assert progress.error and progress.error.startswith("interrupted"), progress.error
    assert not (tmp_path / "o.work" / ".lock").exists()
