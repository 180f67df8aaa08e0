"""Bad input seen from the compositor: each gives a message through the host's message suite and a
failed render, never a crash, a hang, a black frame or a worker left running. Every scenario runs the
test host (tests/ofx_host) in a child process, so a plug-in that crashes fails the test instead of
taking pytest down."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from ofx_host import ofx
from ofx_host.testing import bundle, logging_python, real_shot, run_scenario, worker_env

ERROR_TYPES = (ofx.MESSAGE_ERROR, ofx.MESSAGE_FATAL)


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    return real_shot(tmp_path_factory.mktemp("shot"), 6, [0, 5])


def failed_render(tmp_path, shot, *, params=None, env=None, clips=None, frame=1003, context=ofx.CONTEXT_GENERAL):
    """Render one frame of a scenario that must fail; returns (the error messages' text, outcome)."""
    spec = {
        "bundle": str(bundle()),
        "env": {**worker_env(tmp_path / "cache"), **(env or {})},
        "context": context,
        "clips": clips or {"Source": shot.clip_spec("Source"), "Keys": shot.clip_spec("Keys")},
        "params": {"keyFrames": ",".join(map(str, shot.key_times)), **(params or {})},
        "steps": [{"render": [frame]}],
    }
    out = run_scenario(spec, tmp_path / "run", timeout=240)
    assert out.returncode == 0 and out.result is not None, \
        f"the host process died ({out.returncode}): {out.stderr[-3000:]}"
    r = out.result
    assert r["callback_errors"] == [], r["callback_errors"]
    step = r["steps"][0]
    assert step["statuses"][str(frame)] == ofx.STAT_FAILED, ofx.status_name(step["statuses"][str(frame)])
    assert out.frame(0, frame) is None
    assert step["children_left"] == [], f"processes left running: {step['children_left']}"
    errors = [m["text"] for m in out.messages(*ERROR_TYPES)]
    assert errors, f"no error message posted (messages: {r['messages']})"
    return "\n".join(errors), out


def test_a_host_without_suites_gets_an_error_status_from_load(tmp_path):
    out = run_scenario({"bundle": str(bundle()), "offer_suites": False}, tmp_path)
    assert out.returncode == 0 and out.result is not None, f"the host process died ({out.returncode}): {out.stderr[-3000:]}"
    status = out.result["load_status"]
    assert status not in (ofx.STAT_OK, ofx.STAT_REPLY_DEFAULT), ofx.status_name(status)
    assert status in (ofx.STAT_FAILED, ofx.STAT_ERR_MISSING_HOST_FEATURE, ofx.STAT_ERR_FATAL)
    assert [a for a, _ in out.result["actions"]] == [ofx.ACTION_LOAD]
    assert all(not served for _, _, served in out.result["suites_asked"])


def test_no_worker_python(tmp_path, shot):
    missing = tmp_path / "no-such-dir" / "python3"
    text, _ = failed_render(tmp_path, shot, env={"RERENDER_OFX_PYTHON": str(missing)})
    assert str(missing) in text


def test_a_python_without_rerender(tmp_path, shot):
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    assert subprocess.run([str(python), "-c", "import rerender"], capture_output=True).returncode != 0
    text, _ = failed_render(tmp_path, shot, env={"RERENDER_OFX_PYTHON": str(python)})
    assert str(python) in text and "rerender" in text.lower()


def test_no_key_frames(tmp_path, shot):
    text, _ = failed_render(tmp_path, shot, params={"keyFrames": ""})
    assert re.search(r"key", text, re.I)


def test_a_key_time_outside_the_source(tmp_path, shot):
    text, _ = failed_render(tmp_path, shot, params={"keyFrames": f"{shot.first},2000"})
    assert "2000" in text


def test_clips_of_different_sizes(tmp_path, shot):
    small = np.ascontiguousarray(shot.keys_clip[:, ::2, ::2])
    clips = {"Source": shot.clip_spec("Source"), "Keys": shot.clip_spec("Keys", small)}
    text, _ = failed_render(tmp_path, shot, clips=clips)
    h, w = small.shape[1:3]
    assert str(w) in text and str(h) in text, text


def test_a_worker_that_dies(tmp_path, shot):
    log = tmp_path / "starts.log"
    # the propagation worker runs for a moment and then dies with status 1 (as on an out-of-memory kill)
    extra = f"""case "$*" in *propagate*)
  '{sys.executable}' "$@" & child=$!
  sleep 1; kill -9 $child 2>/dev/null; wait $child 2>/dev/null; exit 1;;
esac"""
    python = logging_python(tmp_path / "dying-python", log, extra)
    text, _ = failed_render(tmp_path, shot, env={"RERENDER_OFX_PYTHON": str(python)})
    assert re.search(r"exit|died|killed|status|crash|signal", text, re.I), text


def test_the_filter_context_without_keys(tmp_path, shot):
    # in the filter context Keys is an optional input (the spec): unconnected, the render says so
    text, _ = failed_render(tmp_path, shot, clips={"Source": shot.clip_spec("Source")}, context=ofx.CONTEXT_FILTER)
    assert "Keys" in text
