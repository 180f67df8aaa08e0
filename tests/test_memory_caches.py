"""What the propagation keeps in memory within a run (decoded input frames and flows and occlusion
masks, a segment's candidates until it is blended, the soft blend's per-frame maps) holds exactly what the work
directory's files hold: a job with every cache off (budget 0: everything read back from the files,
the blend's maps spilled to disk) writes the same bytes."""
import numpy as np
import pytest

import rerender.flow
import rerender.temporal_blend
import rerender.segments
import rerender.workdir
from _stylised_clip import clip, fast_config, write_clip_and_keys
from rerender.pipeline import propagate
from rerender.recent import Recent

KEYS = (0, 10, 20)


def test_caches_off_give_the_same_bytes(tmp_path, monkeypatch):
    frames = clip()[:21]
    inp, keys = write_clip_and_keys(tmp_path, frames, KEYS)
    cfg = fast_config()
    propagate(inp, keys, tmp_path / "cached", config=cfg)
    monkeypatch.setattr(rerender.flow, "MEMORY_BYTES", 0)
    monkeypatch.setattr(rerender.segments, "cache_budget", lambda: 0)
    monkeypatch.setattr(rerender.workdir, "FRAME_MEMORY_BYTES", 0)
    frames_read = []
    real_working = rerender.workdir.WorkDir._working
    monkeypatch.setattr(rerender.workdir.WorkDir, "_working",
                        lambda self, path: frames_read.append(path.parent.name == "frames") or real_working(self, path))
    spilled = []
    real_store = rerender.temporal_blend._FrameStore.put

    def put(self, i, x):
        spilled.append(self.folder is not None)
        return real_store(self, i, x)

    monkeypatch.setattr(rerender.temporal_blend._FrameStore, "put", put)
    propagate(inp, keys, tmp_path / "files", config=cfg)
    assert spilled and all(spilled)  # the second run really went through the files
    assert sum(frames_read) > 21  # (every step read its frame back)
    for i in range(21):
        name = f"{i:04d}.png"
        assert (tmp_path / "cached" / name).read_bytes() == (tmp_path / "files" / name).read_bytes(), i


def test_recent_keeps_the_newest_within_its_budget():
    r = Recent(100)
    a, b, c = (np.zeros(40, np.uint8) for _ in range(3))
    r.put("a", a), r.put("b", b)
    assert r.get("a") is a  # (now the newest)
    r.put("c", c)  # 120 bytes: the oldest, b, goes
    assert r.get("b") is None and r.get("a") is a and r.get("c") is c and r.used == 80
    with pytest.raises(ValueError):
        a[0] = 1  # shared values are read-only
    r.put("big", np.zeros(101, np.uint8))  # larger than the budget: not kept, nothing evicted
    assert r.get("big") is None and r.used == 80
    r.drop_where(lambda key: key != "a")
    assert r.get("a") is None and r.used == 40
