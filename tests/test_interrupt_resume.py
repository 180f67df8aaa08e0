"""Ctrl-C during a propagation step: what a resume has to redo (issue 26, point 12).

Measured on vtest.avi (frames 0:21, keys 0/10/20, 2 workers; CPU seconds, which a loaded machine
does not distort): fresh run 49.5 s; interrupted at 15/36 steps 22.7 s + resume 31.3 s. The resume
redid no decode, flow or stored step; what it redid is the step each pass was computing when Ctrl-C
came: the pool waits for it to finish (the wait after Ctrl-C), then ``segments.run_pass`` checks for
cancellation *before* storing the step it just computed, so that step is thrown away and computed
again on resume (one step per running pass; and a Ctrl-C between two steps still starts the next
one). The test below shows it; it passes once ``run_pass`` checks after storing (and announcing) a
step instead of before.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from _stylised_clip import clip, fast_config, write_clip_and_keys
from rerender.pipeline import propagate


@pytest.mark.skipif(os.name != "posix" or threading.current_thread() is not threading.main_thread(),
                    reason="a real SIGINT to the main thread")
def test_no_step_is_computed_and_thrown_away_after_ctrl_c(tmp_path, monkeypatch):
    from rerender import segments

    computed = []
    real = segments.propagate_pass

    def counted(*args, **kwargs):
        for step in real(*args, **kwargs):
            computed.append(step.index)
            yield step

    monkeypatch.setattr(segments, "propagate_pass", counted)
    frames = clip(12, 32, 48)
    inp, keys = write_clip_and_keys(tmp_path, frames, (0, 11))
    cfg = fast_config(workers=1)
    stored = []

    def ctrl_c_after_5(stage, index):  # called in the pass's thread once a step is stored
        if stage.startswith("propagate"):
            stored.append(index)
            if len(stored) == 5:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)  # the main thread has taken the interrupt by now

    with pytest.raises(KeyboardInterrupt):
        propagate(inp, keys, tmp_path / "o", work_dir=tmp_path / "w", config=cfg, on_step=ctrl_c_after_5)
    on_disk = list((tmp_path / "w" / "segments").rglob("[0-9]*.npz"))
    # every step computed before the job stopped is stored: a resume redoes none of them
    assert len(stored) == len(on_disk) == 5 and len(computed) == 5, computed
    resumed = propagate(inp, keys, tmp_path / "o", work_dir=tmp_path / "w", config=cfg)
    assert resumed.synthesized == 20 - 5  # 2 passes x 10 frames: only what was not finished
