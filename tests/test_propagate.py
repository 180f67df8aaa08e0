"""Propagation passes: configuration, guides, segment planning, warm starts and resumable state."""
import dataclasses
import typing

import numpy as np
import pytest

from _stylised_clip import clip, fast_config, psnr, stylise
from rerender import config
from rerender.job import plan_segments
from rerender.propagate import KeyFrame, PassState, PropagationConfig, build_guides, propagate_pass


class MemorySource:
    """Frames in memory and the true flow of the translating pattern (+velocity forward)."""

    def __init__(self, frames, velocity=(1.0, 0.5)):
        self.frames = frames
        self.v = np.array(velocity, np.float32)

    def frame(self, i):
        return self.frames[i]

    def flow(self, a, b):
        h, w = self.frames[0].shape[:2]
        return np.broadcast_to(self.v * (b - a), (h, w, 2)).astype(np.float32).copy()


def test_defaults_are_the_reference_values():
    c = PropagationConfig()
    assert (c.colour_weight, c.edge_weight, c.positional_weight, c.temporal_weight) == (6.0, 0.5, 2.0, 0.5)
    assert (c.patch_size, c.uniformity, c.search_vote_iters, c.patchmatch_iters, c.stop_threshold) == \
        (5, 3500.0, 12, 6, 5.0)
    assert c.flow == "dis" and c.poisson is False and c.blend == "soft"


def test_blend_fingerprint_covers_every_blend_option_and_nothing_else():
    c = PropagationConfig()
    changes = {"blend": "select", "blend_smoothing": 0.3, "blend_detail": 0.5, "poisson": True,
               "poisson_lambda": 0.2}
    for k, v in changes.items():
        other = dataclasses.replace(c, **{k: v})
        assert other.blend_fingerprint() != c.blend_fingerprint(), k
        assert other.synthesis_fingerprint() == c.synthesis_fingerprint(), k
    # the option's type, the blending module and the command line name the same methods
    from rerender.cli import build_parser
    from rerender.temporal_blend import BLEND_METHODS

    assert typing.get_args(typing.get_type_hints(PropagationConfig)["blend"]) == BLEND_METHODS
    sub = next(a for a in build_parser(False)._actions if a.dest == "command").choices["propagate"]
    assert tuple(next(a for a in sub._actions if a.dest == "blend").choices) == BLEND_METHODS
    for bad in ({"blend": "median"}, {"blend_smoothing": 1.0}, {"blend_detail": -0.1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PropagationConfig(**bad)


def test_config_file_and_errors(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("edge_weight: 1.5\npatchmatch_iters: 3\n")
    c = config.load(PropagationConfig, f, {"poisson": True})
    assert c.edge_weight == 1.5 and c.patchmatch_iters == 3 and c.poisson
    f.write_text("edge_wieght: 1.5\n")
    with pytest.raises(config.ConfigError, match="edge_wieght.*edge_weight"):
        config.load(PropagationConfig, f)
    with pytest.raises(ValueError, match="patch_size"):
        PropagationConfig(patch_size=4)
    with pytest.raises(config.ConfigError, match="flow"):
        config.load(PropagationConfig, None, {"flow": "raft9000"})


def test_build_guides_weights_and_omissions():
    frames = clip(3, 32, 40)
    key = KeyFrame(0, stylise(frames[0]), frames[0])
    pos = np.zeros((32, 40, 2), np.float32)
    g = build_guides(key, frames[1], pos, frames[1], PropagationConfig())
    assert [w for _, _, w in g] == [6.0, 0.5, 2.0, 0.5]
    assert [s.shape[2] for s, _, _ in g] == [3, 1, 2, 3]
    assert all(s.shape == t.shape and s.dtype == t.dtype == np.uint8 for s, t, _ in g)
    g = build_guides(key, frames[1], pos, None, PropagationConfig(edge_weight=0))
    assert [w for _, _, w in g] == [6.0, 2.0]


def test_plan_segments_covers_every_non_key_frame_once():
    segs = plan_segments([3, 10, 11, 20], 0, 25)
    assert [(s.a, s.b) for s in segs] == [(None, 3), (3, 10), (11, 20), (20, None)]
    covered = sorted(i for s in segs for i in s.frames)
    assert covered == sorted(set(range(25)) - {3, 10, 11, 20})
    assert [d for d, _, _ in segs[1].passes()] == ["fwd", "bwd"]
    assert segs[0].passes()[0][2] == [2, 1, 0]  # backward from key 3
    assert plan_segments([0], 0, 1) == []


@pytest.mark.parametrize("warm", ["advect", "reuse", "none"])
def test_forward_pass_reproduces_the_known_stylisation(warm):
    frames = clip(6, 48, 64)
    key = KeyFrame(0, stylise(frames[0]), frames[0])
    steps = list(propagate_pass(key, [1, 2, 3, 4, 5], MemorySource(frames), fast_config(warm_start=warm),
                                threads=1))
    assert [s.index for s in steps] == [1, 2, 3, 4, 5]
    for s in steps:
        assert s.image.shape == frames[0].shape and s.error.shape == (48, 64)
        # away from the borders where new content enters (not in the key: the other key's pass
        # supplies it), the known stylisation is reproduced; see test_job for the threshold
        inner = (slice(8, -8), slice(8, -8))
        assert psnr(s.image[inner], stylise(frames[s.index])[inner]) > 30, (warm, s.index)
        assert s.state.nnf.dtype == np.int32 and s.state.nnf.shape == (48, 64, 2)


def test_resumed_pass_is_identical_to_an_uninterrupted_one():
    frames = clip(5, 40, 48)
    key = KeyFrame(4, stylise(frames[4]), frames[4])
    src = MemorySource(frames)
    cfg = fast_config()
    full = list(propagate_pass(key, [3, 2, 1, 0], src, cfg, threads=1))
    first = list(propagate_pass(key, [3, 2], src, cfg, threads=1))
    st = first[-1].state
    # what the job stores on disk: image, int16 NNF, float16 positions
    stored = PassState(st.index, st.output, st.nnf.astype(np.int16).astype(np.int32), st.positions.astype(np.float16).astype(np.float32))
    rest = list(propagate_pass(key, [1, 0], src, cfg, state=stored, threads=1))
    for a, b in zip(full[2:], rest):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.error, b.error)


def test_step_must_be_next_to_the_previous_frame():
    frames = clip(4, 32, 32)
    key = KeyFrame(0, stylise(frames[0]), frames[0])
    with pytest.raises(ValueError, match="not next to"):
        next(propagate_pass(key, [2], MemorySource(frames), fast_config()))
    with pytest.raises(ValueError, match="differ in size"):
        KeyFrame(0, stylise(frames[0])[:16], frames[0])
