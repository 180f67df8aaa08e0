"""rerender.metrics: warping error (temporal consistency) with known answers."""
from __future__ import annotations

import json

import numpy as np
import pytest

from _clips import moving_pattern, write_sequence, write_test_video
from rerender.media import MediaError, read_frames, write_video
from rerender.metrics import temporal_consistency, warping_error


def _stylise(frame: np.ndarray) -> np.ndarray:
    """A fixed per-pixel colour transform: an output that follows the input's motion exactly."""
    lut = (255 * (np.arange(256) / 255.0) ** 0.7).astype(np.uint8)
    return np.ascontiguousarray(lut[frame][:, :, ::-1])


def _flicker(frames, seed=0):
    rng = np.random.default_rng(seed)
    return [np.clip(f.astype(np.float32) * rng.uniform(0.85, 1.15) + rng.normal(0, 6, f.shape), 0, 255)
            .astype(np.uint8) for f in frames]


def test_warping_error_known_values():
    img = moving_pattern(1, 24, 32)[0]
    zero = np.zeros((24, 32, 2), np.float32)
    # no motion, the next frame 10 levels brighter everywhere: E = (10/255)^2 exactly
    brighter = np.clip(img.astype(int) + 10, 0, 255).astype(np.uint8)
    mask = (img <= 245).all(axis=2)  # avoid clipping so the answer is exact
    e, occ = warping_error(np.where(mask[..., None], img, 0).astype(np.uint8),
                           np.where(mask[..., None], brighter, 0).astype(np.uint8), zero, zero)
    assert occ == 0.0
    assert e == pytest.approx((10 / 255) ** 2 * mask.mean(), rel=1e-5)
    # an exact integer shift, compensated by the flow: E = 0 on the non-occluded pixels
    shifted = np.zeros_like(img)
    shifted[:, 3:] = img[:, :-3]
    flow = zero.copy()
    flow[..., 0] = 3.0
    e, occ = warping_error(img, shifted, flow, -flow)
    assert e == 0.0
    assert occ == pytest.approx(3 / 32)  # the last 3 columns map outside the frame
    with pytest.raises(ValueError, match="shapes differ"):
        warping_error(img, img[:10], flow, flow)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("metrics é")
    frames = moving_pattern(10, 48, 64, velocity=(1.5, 0.5))
    src = write_sequence(d / "input", frames)[0].parent
    write_sequence(d / "good", [_stylise(f) for f in frames])
    return d, src, frames


def test_consistent_output_scores_near_zero_and_flicker_high(scene):
    d, src, frames = scene
    good = d / "good"
    bad = write_sequence(d / "bad", _flicker([_stylise(f) for f in frames]))[0].parent
    r_good = temporal_consistency(src, good)
    r_bad = temporal_consistency(src, bad)
    assert len(r_good.per_pair) == 9 and r_good.frame_count == 10 and r_good.flow == "dis"
    # measured ~5e-5 (flow interpolation residue) vs ~4e-3 with flicker
    assert r_good.mean < 3e-4
    assert r_bad.mean > 10 * r_good.mean
    assert min(r_bad.per_pair) > max(r_good.per_pair)
    data = json.loads(r_bad.to_json())
    assert data["mean"] == pytest.approx(r_bad.mean) and len(data["per_pair"]) == 9
    assert "warping error" in r_bad.summary()


def test_video_output_at_other_size_and_frame_selection(scene, tmp_path):
    d, src, frames = scene
    # output at half size (as with --size), as a video file; 4:2:0 chroma of this noisy texture
    # is not exactly motion-consistent, so the stable video scores ~1.4e-3 and its flickering
    # version ~6.6e-3
    out = tmp_path / "out é.mp4"
    write_video((_stylise(f) for f in read_frames(src, size=24)), out, 24)
    r = temporal_consistency(src, out)
    assert (r.width, r.height) == (32, 24) and len(r.per_pair) == 9
    flick = tmp_path / "flicker.mp4"
    write_video(_flicker([_stylise(f) for f in read_frames(src, size=24)]), flick, 24)
    assert temporal_consistency(src, flick).mean > 3 * r.mean
    # frames=2:6 with an output holding just those frames, or the whole clip
    part = write_sequence(tmp_path / "part", [_stylise(f) for f in frames[2:6]])[0].parent
    r_part = temporal_consistency(src, part, frames=slice(2, 6))
    r_whole = temporal_consistency(src, d / "good", frames=slice(2, 6))
    assert r_part.first_frame == 2 and len(r_part.per_pair) == 3
    assert r_whole.per_pair == pytest.approx(r_part.per_pair, rel=1e-6, abs=1e-9)


def test_metrics_errors(scene, tmp_path):
    d, src, frames = scene
    short = write_sequence(tmp_path / "short", frames[:7])[0].parent
    with pytest.raises(MediaError, match="short: has 7 frames"):
        temporal_consistency(src, short)
    wide = write_sequence(tmp_path / "wide", [np.zeros((20, 64, 3), np.uint8)] * 10)[0].parent
    with pytest.raises(MediaError, match="aspect ratio"):
        temporal_consistency(src, wide)
    with pytest.raises(MediaError, match="out of bounds"):
        temporal_consistency(src, src, frames=slice(5, 40))
    video = write_test_video(tmp_path / "v.mp4", frames)
    with pytest.raises(ValueError, match="unknown"):
        temporal_consistency(video, video, flow="nope")


def test_metrics_command_takes_the_propagated_range(scene, tmp_path, capsys):
    from rerender.cli import main

    d, src, frames = scene
    part = write_sequence(tmp_path / "part", [_stylise(f) for f in frames[3:8]])[0].parent
    # without --frames the counts differ, and the error says how to select the range
    assert main(["metrics", str(src), str(part)]) == 2
    assert "--frames A:B" in capsys.readouterr().err
    assert main(["--progress", "json", "metrics", str(src), str(part), "--frames", "3:8"]) == 0
    event = next(json.loads(line) for line in capsys.readouterr().out.splitlines() if '"metrics"' in line)
    direct = temporal_consistency(src, part, frames=slice(3, 8))
    assert event["first_frame"] == 3 and event["frame_count"] == 5 and len(event["per_pair"]) == 4
    assert event["per_pair"] == pytest.approx(direct.per_pair)
