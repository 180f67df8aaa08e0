"""Rendering real footage through the OFX plug-in, driven by the test host (tests/ofx_host) in a child
process: every frame equals ``rerender propagate``'s on the same plates and keys (floats exactly),
frames come from temporal clip access, progress goes through the progress suite, one worker job
serves the shot (also for two threads at once), a changed parameter re-renders, the host's abort
stops the worker and a second render resumes."""
from __future__ import annotations

import numpy as np
import pytest

from ofx_host import ofx
from ofx_host.testing import (bundle, cli_reference, logging_python, read_exr, real_shot, rounds_to, run_scenario,
                              srgb_decode, srgb_encode, worker_env, worker_starts, write_exr)

BLEND_LINEAR = 2   # index of "linear" in the blend choice (checked against rerender in test_ofx_describe.py)


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    # 12 frames of carphone (176 x 144), keys painted at 1001, 1006 and 1012
    return real_shot(tmp_path_factory.mktemp("shot"), 12, [0, 5, 11])


@pytest.fixture(scope="module")
def reference(shot, tmp_path_factory):
    return cli_reference(shot, tmp_path_factory.mktemp("cli"))


def spec_for(shot, root, python=None, **extra):
    return {
        "bundle": str(bundle()),
        "env": worker_env(root / "cache", python),
        "snapshot": str(root / "cache"),
        "context": ofx.CONTEXT_GENERAL,
        "clips": {"Source": shot.clip_spec("Source"), "Keys": shot.clip_spec("Keys")},
        "params": {"keyFrames": ",".join(map(str, shot.key_times))},
        **extra,
    }


def ok(out):
    assert out.returncode == 0 and out.result is not None, \
        f"the host process died ({out.returncode}): {out.stderr[-3000:]}"
    r = out.result
    assert r["callback_errors"] == [], r["callback_errors"]
    assert r["create_status"][0] == ofx.STAT_OK, ofx.status_name(r["create_status"][0])
    return r


@pytest.fixture(scope="module")
def rendered(shot, tmp_path_factory):
    """Every frame rendered at float depth, then two frames again after blend -> linear."""
    root = tmp_path_factory.mktemp("host")
    log = root / "starts.log"
    python = logging_python(root / "python", log)
    spec = spec_for(shot, root, python, steps=[
        {"render": shot.frames, "sequence": True},   # a batch render: one Begin/EndSequenceRender
        {"render": [1003, 1009], "params": {"blend": BLEND_LINEAR}},
    ])
    out = run_scenario(spec, root / "run", timeout=600)
    ok(out)
    out.log = log
    out.root = root
    return out


def test_every_frame_equals_the_cli(rendered, reference, shot):
    statuses = dict(rendered.result["steps"][0]["statuses"])
    assert statuses.pop("begin") in (ofx.STAT_OK, ofx.STAT_REPLY_DEFAULT)
    assert statuses.pop("end") in (ofx.STAT_OK, ofx.STAT_REPLY_DEFAULT)
    bad = {t: ofx.status_name(s) for t, s in statuses.items() if s != ofx.STAT_OK}
    assert not bad, f"failed renders {bad}; messages: {rendered.result['messages']}"
    for t in shot.frames:
        got, want = rendered.frame(0, t), reference[t]
        assert got.dtype == np.float32 and got.shape == want.shape, (t, got.dtype, got.shape, want.shape)
        assert np.array_equal(got, want), f"frame {t}: max |diff| {np.nanmax(np.abs(got - want))}"
    # key frames are the painted keys where the method reproduces them; elsewhere the plates changed
    assert not np.array_equal(rendered.frame(0, 1003), shot.plates[2])


def test_frames_come_through_temporal_clip_access(rendered, shot):
    r = rendered.result
    fetched = {(c, int(t)) for c, t, s in r["fetched"] if s == ofx.STAT_OK}
    assert {("Source", t) for t in shot.frames} <= fetched
    assert {("Keys", t) for t in shot.key_times} <= fetched
    assert r["released"] == sum(1 for _, _, s in r["fetched"] if s == ofx.STAT_OK), "images not released"
    assert r["violations"] == []


def test_progress_goes_through_the_progress_suite(rendered):
    events = rendered.result["steps"][0]["progress"]
    kinds = [e for e, _ in events]
    assert kinds and kinds[0] == "start" and kinds[-1] == "end", kinds[:5]
    values = [v for e, v in events if e == "update"]
    assert len(values) >= 2 and all(0.0 <= v <= 1.0 for v in values)
    assert values == sorted(values), "progress went backwards"


def test_one_worker_job_serves_the_shot(rendered):
    starts = worker_starts(rendered.log)
    assert len(starts) == 2, starts   # one for the shot, one after the blend changed
    assert rendered.result["steps"][0]["children_left"] == []


def test_a_changed_parameter_renders_again(rendered, shot, tmp_path_factory):
    step = rendered.result["steps"][1]
    assert rendered.result["param_status"]["1:blend"] == ofx.STAT_OK
    assert all(s == ofx.STAT_OK for s in step["statuses"].values()), step["statuses"]
    linear = cli_reference(shot, tmp_path_factory.mktemp("cli_linear"), "--blend", "linear")
    for t in (1003, 1009):
        got = rendered.frame(1, t)
        assert np.array_equal(got, linear[t]), f"frame {t}: max |diff| {np.abs(got - linear[t]).max()}"
        assert not np.array_equal(got, rendered.frame(0, t)), f"frame {t} did not change with the blend"


def test_negative_row_bytes_and_padded_rows(rendered, reference, shot):
    # the finished job is in the cache: a host whose rows run top-down (negative rowBytes) with padding
    spec = spec_for(shot, rendered.root, row_order="top_down", row_padding=24, steps=[{"render": [1004]}])
    out = run_scenario(spec, rendered.root / "run_rows", timeout=300)
    r = ok(out)
    assert r["steps"][0]["statuses"]["1004"] == ofx.STAT_OK, r["messages"]
    assert np.array_equal(out.frame(0, 1004), reference[1004])


@pytest.mark.parametrize("instances", [1, 2])
def test_two_threads_at_once_start_one_job(shot, reference, tmp_path, instances):
    log = tmp_path / "starts.log"
    python = logging_python(tmp_path / "python", log)
    spec = spec_for(shot, tmp_path, python, steps=[{"render": [1003, 1009], "threads": 2, "instances": instances}])
    out = run_scenario(spec, tmp_path / "run", timeout=600)
    r = ok(out)
    assert r["steps"][0]["statuses"] == {"1003": ofx.STAT_OK, "1009": ofx.STAT_OK}, r["messages"]
    for t in (1003, 1009):
        assert np.array_equal(out.frame(0, t), reference[t])
    assert len(worker_starts(log)) == 1, worker_starts(log)


def test_eight_bit_host_depth(shot, tmp_path):
    # an 8-bit host holds display-referred (sRGB) bytes: the plug-in hands the worker their linear
    # values (the sRGB curve) as float EXR and rounds the result, seen through the curve, back to bytes
    cache = tmp_path / "cache"
    frames = [1001, 1004, 1009, 1012]
    spec = spec_for(shot, tmp_path, depth=ofx.DEPTH_BYTE, steps=[{"render": frames}])
    spec["clips"] = {"Source": shot.clip_spec("Source", shot.display), "Keys": shot.clip_spec("Keys", shot.display_keys)}
    out = run_scenario(spec, tmp_path / "run", timeout=600)
    r = ok(out)
    assert r["clip_preferences"]["OfxImageClipPropDepth_Output"] == ofx.DEPTH_BYTE
    for t in frames:
        assert r["steps"][0]["statuses"][str(t)] == ofx.STAT_OK, r["messages"]
    # what the worker was given: the bytes through the sRGB curve (to float rounding)
    (job,) = [p for p in cache.glob("jobs/*") if (p / "plates").is_dir()]
    for i, t in enumerate(shot.frames):
        written = read_exr(job / "plates" / f"src.{t}.exr")
        np.testing.assert_allclose(written, srgb_decode(shot.display[i] / np.float32(255)), rtol=1e-6, atol=1e-7)
    # the same propagation by the CLI on those plates and keys, rounded back to bytes
    reference = cli_reference(shot, tmp_path / "cli", plates=str(job / "plates" / "src.%04d.exr"), keys=job / "keys")
    for t in frames:
        got = out.frame(0, t)
        assert got.dtype == np.uint8 and got.shape == shot.display[0].shape
        match = rounds_to(got, np.clip(srgb_encode(reference[t]), 0, 1) * np.float32(255))
        assert match.all(), f"frame {t}: {np.count_nonzero(~match)} values differ from the rounded reference"
        assert np.abs(got.astype(int) - shot.display[t - shot.first]).max() > 0   # it did restyle


@pytest.fixture(scope="module")
def long_shot(tmp_path_factory):
    # a short segment (1001-1003) that finishes long before the long one (1003-1016)
    return real_shot(tmp_path_factory.mktemp("long"), 16, [0, 2, 15])


def test_abort_stops_the_worker_and_the_next_render_resumes(long_shot, tmp_path_factory):
    root = tmp_path_factory.mktemp("abort")
    log = root / "starts.log"
    python = logging_python(root / "python", log)
    spec = spec_for(long_shot, root, python, steps=[
        {"render": [1010], "abort": {"segment_finished": str(root / "cache")}},
        {"render": long_shot.frames},
    ])
    out = run_scenario(spec, root / "run", timeout=600)
    r = ok(out)
    first, second = r["steps"]
    assert first["aborted"], "the job finished before the host aborted it"
    assert first["statuses"]["1010"] != ofx.STAT_OK   # stopped, no frame
    assert out.frame(0, 1010) is None
    assert first["children_left"] == [], f"worker still running after the abort: {first['children_left']}"
    assert all(s == ofx.STAT_OK for s in second["statuses"].values()), (second["statuses"], r["messages"])
    assert len(worker_starts(log)) == 2
    # resumed: what the stopped job finished (its short segment) was reused, not computed again
    done_before = first["snapshot"]
    assert any(k.endswith("stamp.json") for k in done_before), done_before
    assert len(done_before) < len(second["snapshot"]), "nothing was left to do after the abort"
    changed = [k for k, v in done_before.items() if second["snapshot"].get(k) != v]
    assert not changed, f"finished work redone after the abort: {changed}"
    reference = cli_reference(long_shot, tmp_path_factory.mktemp("cli_long"))
    for t in long_shot.frames:
        assert np.array_equal(out.frame(1, t), reference[t]), t


def test_a_matte_and_alpha_output(shot, tmp_path):
    # general context with the optional Matte clip wired: the restyle stays inside the (feathered)
    # matte and, with outputAlpha, the Output is RGBA with the matte as alpha, as `--matte --alpha`
    h, w = shot.plates.shape[1:3]
    matte = np.zeros((len(shot.plates), h, w, 3), np.float32)
    matte[:, h // 4: 3 * h // 4, w // 5: 3 * w // 5] = 1.0
    (tmp_path / "mattes").mkdir()
    for i, t in enumerate(shot.frames):
        write_exr(tmp_path / "mattes" / f"m.{t}.exr", matte[i])
    frames = [1003, 1008]
    spec = spec_for(shot, tmp_path, params={"keyFrames": ",".join(map(str, shot.key_times)), "matteFeather": 2.0,
                                            "outputAlpha": 1},
                    steps=[{"render": frames}])
    spec["clips"]["Matte"] = shot.clip_spec("Matte", matte)
    out = run_scenario(spec, tmp_path / "run", timeout=600)
    r = ok(out)
    assert r["clip_preferences"]["OfxImageClipPropComponents_Output"] == ofx.COMPONENTS_RGBA
    reference = cli_reference(shot, tmp_path / "cli", "--matte", str(tmp_path / "mattes" / "m.%04d.exr"),
                              "--matte-feather", "2", "--alpha")
    for t in frames:
        assert r["steps"][0]["statuses"][str(t)] == ofx.STAT_OK, r["messages"]
        got = out.frame(0, t)
        assert got.shape == (h, w, 4) and reference[t].shape == (h, w, 4)
        assert np.array_equal(got, reference[t]), f"frame {t}: max |diff| {np.abs(got - reference[t]).max()}"
        assert got[0, 0, 3] == 0.0 and got[h // 2, w // 3, 3] == 1.0   # the matte is the alpha


def test_an_opaque_rgba_matte_is_read_by_its_luminance(shot, tmp_path):
    # hosts that give every clip as RGBA (found with the OpenFX HostSupport library's host) mark an
    # RGB matte's filled-in alpha kOfxImageOpaque: that alpha carries nothing, so the matte is the
    # luminance, as `--matte` reads an RGB file (before: the constant alpha made the whole frame matte)
    h, w = shot.plates.shape[1:3]
    matte = np.zeros((len(shot.plates), h, w, 3), np.float32)
    matte[:, h // 3: 2 * h // 3, w // 4: w // 2] = 1.0
    (tmp_path / "mattes").mkdir()
    for i, t in enumerate(shot.frames):
        write_exr(tmp_path / "mattes" / f"m.{t}.exr", matte[i])
    rgba = np.concatenate([matte, np.ones_like(matte[..., :1])], axis=-1)
    frames = [1004, 1010]
    spec = spec_for(shot, tmp_path, params={"keyFrames": ",".join(map(str, shot.key_times)), "outputAlpha": 1},
                    steps=[{"render": frames}])
    spec["clips"]["Matte"] = {**shot.clip_spec("Matte", rgba), "premult": ofx.OPAQUE}
    out = run_scenario(spec, tmp_path / "run", timeout=600)
    r = ok(out)
    reference = cli_reference(shot, tmp_path / "cli", "--matte", str(tmp_path / "mattes" / "m.%04d.exr"), "--alpha")
    for t in frames:
        assert r["steps"][0]["statuses"][str(t)] == ofx.STAT_OK, r["messages"]
        got = out.frame(0, t)
        assert got.shape == (h, w, 4) and reference[t].shape == (h, w, 4)
        assert np.array_equal(got, reference[t]), f"frame {t}: max |diff| {np.abs(got - reference[t]).max()}"
        assert got[0, 0, 3] == 0.0 and got[h // 2, 3 * w // 8, 3] == 1.0   # the matte's luminance is the alpha


def test_eight_bit_alpha_output_is_premultiplied_after_the_curve(shot, tmp_path):
    # at 8 bits with the matte as alpha, the worker's premultiplied linear colour is un-premultiplied,
    # put through the sRGB curve and premultiplied again: OFX integer images are premultiplied
    # display values (kOfxImageEffectPropPreMultiplication), as the float path is premultiplied linear
    cache = tmp_path / "cache"
    h, w = shot.plates.shape[1:3]
    matte = np.zeros((len(shot.plates), h, w, 3), np.uint8)
    matte[:, h // 4: 3 * h // 4, w // 5: 3 * w // 5] = 255
    frames = [1003, 1008]
    spec = spec_for(shot, tmp_path, depth=ofx.DEPTH_BYTE, steps=[{"render": frames}],
                    params={"keyFrames": ",".join(map(str, shot.key_times)), "matteFeather": 3.0, "outputAlpha": 1})
    spec["clips"] = {"Source": shot.clip_spec("Source", shot.display), "Keys": shot.clip_spec("Keys", shot.display_keys),
                     "Matte": shot.clip_spec("Matte", matte)}
    out = run_scenario(spec, tmp_path / "run", timeout=600)
    r = ok(out)
    assert r["clip_preferences"]["OfxImageClipPropComponents_Output"] == ofx.COMPONENTS_RGBA
    (job,) = [p for p in cache.glob("jobs/*") if (p / "plates").is_dir()]
    reference = cli_reference(shot, tmp_path / "cli", "--matte", str(job / "matte" / "src.%04d.exr"),
                              "--matte-feather", "3", "--alpha", plates=str(job / "plates" / "src.%04d.exr"),
                              keys=job / "keys")
    for t in frames:
        assert r["steps"][0]["statuses"][str(t)] == ofx.STAT_OK, r["messages"]
        got, want = out.frame(0, t), reference[t]
        assert got.dtype == np.uint8 and got.shape == (h, w, 4) and want.shape == (h, w, 4)
        alpha = want[..., 3:]
        partial = (alpha[..., 0] > 0.05) & (alpha[..., 0] < 0.95)
        assert partial.any(), "the feathered edge has partial alpha"
        straight = np.divide(want[..., :3], alpha, out=np.zeros_like(want[..., :3]), where=alpha > 0)
        expected = np.clip(srgb_encode(straight), 0, 1) * alpha * np.float32(255)
        match = rounds_to(got[..., :3], expected) & rounds_to(got[..., 3:], alpha * np.float32(255))
        assert match.all(), f"frame {t}: {np.count_nonzero(~match)} values differ from the premultiplied reference"


def test_the_installed_bundle_renders_with_its_recorded_worker(shot, reference, tmp_path):
    # the user's path: `rerender ofx install --dir DIR`, then a host loading DIR's bundle with no
    # RERENDER_OFX_PYTHON: the worker is the interpreter the install recorded
    import os
    import subprocess
    import sys

    if os.environ.get("RERENDER_OFX_TEST_BUNDLE"):
        pytest.skip("RERENDER_OFX_TEST_BUNDLE is set: the installed bundle would be the package's build, not that one")
    bundle()
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"))
    p = subprocess.run([sys.executable, "-m", "rerender", "ofx", "install", "--dir", str(tmp_path / "plugins")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    spec = spec_for(shot, tmp_path, steps=[{"render": [1005]}])
    spec["bundle"] = str(tmp_path / "plugins" / "Rerender.ofx.bundle")
    spec["env"]["RERENDER_OFX_PYTHON"] = None   # removed from the host's environment
    out = run_scenario(spec, tmp_path / "run", timeout=600)
    r = ok(out)
    assert r["steps"][0]["statuses"]["1005"] == ofx.STAT_OK, r["messages"]
    assert np.array_equal(out.frame(0, 1005), reference[1005])


def test_a_changed_source_frame_renders_again(rendered, shot, tmp_path_factory):
    # the plate changes upstream at 1004 (a paint fix) after the shot was rendered: frame 1003, whose
    # segment (1001-1006) holds 1004, must come from the new plates, not from the cached job
    root = tmp_path_factory.mktemp("edit")
    spec = spec_for(shot, rendered.root, steps=[   # the rendered shot's cache: the first render is a hit
        {"render": [1003]},
        {"render": [1003], "edits": [{"clip": "Source", "frame": 1004, "gain": 1.25}]},
    ])
    out = run_scenario(spec, root / "run", timeout=600)
    r = ok(out)
    assert [s["statuses"]["1003"] for s in r["steps"]] == [ofx.STAT_OK, ofx.STAT_OK], r["messages"]
    assert np.array_equal(out.frame(0, 1003), rendered.frame(0, 1003))
    edited = real_shot(root / "edited", len(shot.plates), [t - shot.first for t in shot.key_times])
    plates = edited.plates.copy()
    plates[3] = (plates[3] * np.float32(1.25)).astype(np.float32)
    for i, p in enumerate(plates):
        write_exr(edited.root / "plates" / f"shot.{shot.first + i}.exr", p)
    want = cli_reference(edited, root / "cli")[1003]
    before = out.frame(0, 1003)
    assert not np.array_equal(want, before), "the edit does not change the CLI's frame 1003: the test shows nothing"
    got = out.frame(1, 1003)
    assert not np.array_equal(got, before), "frame 1003 was served from the job made before the plate changed"
    assert np.array_equal(got, want)


def test_a_repainted_key_renders_again_and_reuses_the_other_segment(rendered, shot, tmp_path_factory):
    # the key at 1012 is repainted after the shot was rendered: 1009 (segment 1006-1012) changes as the
    # CLI's does with the new key; the work of segment 1001-1006 is reused as the CLI's resume allows
    root = tmp_path_factory.mktemp("repaint")
    spec = spec_for(shot, root, steps=[
        {"render": [1003, 1009]},
        {"render": [1003, 1009], "edits": [{"clip": "Keys", "frame": 1012, "gain": 0.8}]},
    ])
    out = run_scenario(spec, root / "run", timeout=600)
    r = ok(out)
    assert all(s == ofx.STAT_OK for step in r["steps"] for s in step["statuses"].values()), r["messages"]
    edited = real_shot(root / "edited", len(shot.plates), [t - shot.first for t in shot.key_times])
    write_exr(edited.root / "keys" / "shot.1012.exr", (edited.keys_clip[11] * np.float32(0.8)).astype(np.float32))
    want = cli_reference(edited, root / "cli")
    assert np.array_equal(out.frame(1, 1009), want[1009]) and not np.array_equal(want[1009], rendered.frame(0, 1009))
    assert np.array_equal(out.frame(1, 1003), want[1003])
    before, after = r["steps"][0]["snapshot"], r["steps"][1]["snapshot"]
    kept = [k for k in before if "0000-0005" in k or k.endswith(("out/0001.exr", "out/0002.exr", "out/0003.exr"))]
    assert kept and all(after.get(k) == before[k] for k in kept), "segment 1001-1006 was computed again"


def test_the_filter_context_renders_the_same(rendered, reference, shot):
    # a track-based host uses the filter context (Keys wired as its optional second input)
    spec = spec_for(shot, rendered.root, context=ofx.CONTEXT_FILTER, steps=[{"render": [1007]}])
    out = run_scenario(spec, rendered.root / "run_filter", timeout=300)
    r = ok(out)
    assert r["violations"] == []
    assert r["steps"][0]["statuses"]["1007"] == ofx.STAT_OK, r["messages"]
    assert np.array_equal(out.frame(0, 1007), reference[1007])
