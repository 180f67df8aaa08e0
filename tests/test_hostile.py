"""Hostile invocations (issue 21): every bad command line exits 2 with a message that names the
problem, prints no traceback, and leaves every file as it was (no work directory, no output, no
input changed).

Each case is (argv with ``{t}`` for the test folder, text the error must contain). The shot: a
12-frame 48x32 PNG sequence ``frames/`` with keys 0 and 11 in ``keys/``, the same frames as
``clip.mp4`` and a "result" ``out.mp4``.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rerender.media as media
from _clips import write_test_video
from _stylised_clip import FAST_OPTIONS, clip, stylise, write_clip_and_keys
from rerender.cli import main

P = ["propagate", "{t}/frames", "--keys", "{t}/keys"]
PO = P + ["-o", "{t}/o", "--config", "{t}/fast.yaml"]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    t = tmp_path_factory.mktemp("shot")
    frames = clip(12, 32, 48)
    write_clip_and_keys(t, frames, (0, 11), input_name="frames", keys_name="keys")
    write_test_video(t / "clip.mp4", frames)
    write_test_video(t / "out.mp4", [stylise(f) for f in frames])
    (t / "fast.yaml").write_text(FAST_OPTIONS)
    (t / "votes.yaml").write_text(FAST_OPTIONS.replace("2", "100000000", 1))
    (t / "dup.yaml").write_text("search_vote_iters: 2\npatchmatch_iters: 1\nsearch_vote_iters: 3\n")
    (t / "latin1.yaml").write_bytes("# r\xe9glages\nsearch_vote_iters: 2\n".encode("latin-1"))
    (t / "list.yaml").write_text("- 1\n- 2\n")
    (t / "user-project").mkdir()
    (t / "user-project" / "notes.txt").write_text("my notes")
    (t / "somedir").mkdir()
    key = stylise(frames[0])
    for name, files in (("far", {"0000.png": key, "0099.png": key}),
                        ("wide", {"0000.png": media.resize_to(key, (32, 96))}),
                        ("dup", {"0000.png": key, "0010.png": key, "10.jpg": key})):
        for file, img in files.items():
            media.write_image(t / f"keys-{name}" / file, img)
    for line, name in LIMITS.items():
        (t / f"limit-{name}-{len(line)}.yaml").write_text(FAST_OPTIONS + line + "\n")
    return t


@pytest.fixture
def shot(template, tmp_path):
    """A fresh copy of the shot for each case: one case's leftovers cannot hide another's."""
    t = tmp_path / "shot"
    shutil.copytree(template, t)
    return t


# point of issue 21 (or 26) -> cases
CASES = {
    "21.1 metrics --json onto its input": (["metrics", "{t}/clip.mp4", "{t}/out.mp4", "--json", "{t}/clip.mp4"],
                                           "must not be the input"),
    "21.1 metrics --json onto the output": (["metrics", "{t}/clip.mp4", "{t}/out.mp4", "--json", "{t}/out.mp4"],
                                            "must not be"),
    "21.13 metrics --json onto a folder": (["metrics", "{t}/clip.mp4", "{t}/out.mp4", "--json", "{t}/somedir"],
                                           "{t}/somedir: is a folder"),
    "21.13 metrics --json ''": (["metrics", "{t}/clip.mp4", "{t}/out.mp4", "--json", ""], "--json: the file name is empty"),
    "21.2 demo into the current folder": (["demo", "-o", "."], "not made by `rerender demo`"),
    "21.2 demo into a user's folder": (["demo", "-o", "{t}/user-project"], "{t}/user-project"),
    "21.2 demo -o ''": (["demo", "-o", ""], "-o: the output path is empty"),
    "21.8 --threads 100000": (PO + ["--threads", "100000"], "threads"),
    "21.8 search_vote_iters 1e8": (P + ["-o", "{t}/o", "--config", "{t}/votes.yaml"], "search_vote_iters"),
    "21.8 a key outside the clip": (["propagate", "{t}/frames", "--keys", "{t}/keys-far", "-o", "{t}/o"],
                                    "out of range"),
    "26.7 a refused job with a video output": (["propagate", "{t}/clip.mp4", "--keys", "{t}/keys-far", "-o",
                                                "{t}/x.mp4"], "out of range"),
    "21.8 two key files for one frame": (["propagate", "{t}/frames", "--keys", "{t}/keys-dup", "-o", "{t}/o"],
                                         "two files for frame 10"),
    "21.8 a key of another aspect ratio": (["propagate", "{t}/frames", "--keys", "{t}/keys-wide", "-o", "{t}/o"],
                                           "aspect ratio"),
    "21.8 keyframes: a key outside --frames": (["keyframes", "{t}/frames", "--prompt", "x", "--key-frames", "0,99",
                                                "--work-dir", "{t}/kw"], "key frame 99"),
    "21.8 run: a key plan that is not JSON": (["run", "{t}/frames", "--prompt", "x", "--key-frames",
                                               "{t}/fast.yaml", "-o", "{t}/r.mp4"], "fast.yaml"),
    "21.12 --ocio missing": (PO + ["--ocio", "{t}/missing.ocio"], "{t}/missing.ocio"),
    "21.12 --work-dir ''": (PO + ["--work-dir", ""], "--work-dir"),
    "21.12 two frame fields": (P + ["-o", "{t}/o/x.%04d.%04d.png"], "two frame-number fields"),
    "21.12 two frame fields (#)": (P + ["-o", "{t}/o/x.####.%04d.png"], "two frame-number fields"),
    "21.12 %s field": (P + ["-o", "{t}/o/x.%s.png"], "%s"),
    "pattern without an image extension": (P + ["-o", "{t}/o/x.####"], "{t}/o/x.####: the pattern must end"),
    "pattern with another extension": (P + ["-o", "{t}/o/x.####.mp3"], "{t}/o/x.####.mp3: the pattern must end"),
    "21.12 one image for many frames": (P + ["-o", "{t}/o.jpg"], "o.jpg"),
    "21.12 --cuts=-5": (PO + ["--cuts=-5"], "--cuts"),
    "21.12 --cuts beyond the clip": (PO + ["--cuts", "100"], "--cuts"),
    "21.12 --cuts outside --frames": (PO + ["--frames", "0:8", "--cuts", "9"], "--cuts"),
    "21.12 --cuts x": (PO + ["--cuts", "x"], "--cuts"),
    "21.12 duplicate YAML key": (P + ["-o", "{t}/o", "--config", "{t}/dup.yaml"], "search_vote_iters"),
    "21.13 -o .": (P + ["-o", "."], "-o ."),
    "21.13 -o ..": (P + ["-o", ".."], "-o .."),
    "21.13 non-UTF-8 config": (P + ["-o", "{t}/o", "--config", "{t}/latin1.yaml"], "{t}/latin1.yaml"),
    "config not a mapping": (P + ["-o", "{t}/o", "--config", "{t}/list.yaml"], "{t}/list.yaml"),
    "config missing": (P + ["-o", "{t}/o", "--config", "{t}/nope.yaml"], "{t}/nope.yaml"),
    "input missing": (["propagate", "{t}/nope.mp4", "--keys", "{t}/keys", "-o", "{t}/o"], "nope.mp4"),
    "keys missing": (["propagate", "{t}/frames", "--keys", "{t}/nokeys", "-o", "{t}/o"], "nokeys"),
    "--frames reversed": (PO + ["--frames", "8:2"], "--frames"),
    "--frames beyond": (PO + ["--frames", "20:30"], "20"),
    "--size 5": (PO + ["--size", "5"], "size"),
    "--size huge": (PO + ["--size", "100000"], "size"),
    "--workers -1": (PO + ["--workers", "-1"], "workers"),
    "patch_size 33": (PO + ["--config", "{t}/fast.yaml"], None),  # replaced below: see _extra_configs
    "--matte missing": (PO + ["--matte", "{t}/nomatte.png"], "nomatte"),
    "--alpha without matte": (PO + ["--alpha"], "alpha"),
    "--colorspace without config": (PO + ["--colorspace", "ACEScg"], "--colorspace"),
    "output is the input folder": (P + ["-o", "{t}/frames"], "frames"),
    "output is the key folder": (P + ["-o", "{t}/keys"], "keys"),
    "work dir is a user's folder": (PO + ["--work-dir", "{t}/user-project"], "{t}/user-project"),
    "unknown option": (PO + ["--bogus"], "--bogus"),
    "bad --blend": (PO + ["--blend", "bogus"], "--blend"),
    "metrics input missing": (["metrics", "{t}/nope.mp4", "{t}/out.mp4"], "nope.mp4"),
    "metrics frame counts differ": (["metrics", "{t}/clip.mp4", "{t}/keys"], "frames"),
    "demo --frames 1": (["demo", "-o", "{t}/demo1", "--frames", "1"], "frames"),
    "demo --frames 10**6": (["demo", "-o", "{t}/demo2", "--frames", "1000000"], "2 to 1000 frames"),
    "demo --key-every 0": (["demo", "-o", "{t}/demo0", "--key-every", "0"], "key_every"),
}

# native limits of the synthesis (csrc/bindings/synthesis_args.h), refused when the config is read
LIMITS = {"patch_size: 33": "patch_size", "pyramid_levels: 17": "pyramid_levels",
          "patchmatch_iters: 20000": "patchmatch_iters", "uniformity: 1.0e+13": "uniformity",
          "stop_threshold: 1.0e+13": "stop_threshold", "style_weight: 1.0e+13": "style_weight",
          "colour_weight: 1.0e+13": "colour_weight", "seed: -1": "seed", "seed: 18446744073709551616": "seed",
          "threads: 1025": "threads"}
del CASES["patch_size 33"]
for _line, _name in LIMITS.items():
    CASES[f"21.8 config {_line}"] = (P + ["-o", "{t}/o", "--config", f"{{t}}/limit-{_name}-{len(_line)}.yaml"],
                                     _name)


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``, with a digest of each file's bytes."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.relpath(os.path.join(folder, d), root) + "/"] = ""
        for f in files:
            p = os.path.join(folder, f)
            out[os.path.relpath(p, root)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def fill(argv: list[str], t: Path) -> list[str]:
    return [a.replace("{t}", str(t)) for a in argv]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_invocation_is_a_named_error_that_changes_nothing(shot, case, capsys, monkeypatch):
    argv, expected = CASES[case]
    monkeypatch.chdir(shot)  # relative outputs (-o .) would land in the shot
    before = snapshot(shot)
    code = main(fill(argv, shot))
    cap = capsys.readouterr()
    assert code == 2, (case, cap.err)
    assert "Traceback" not in cap.err + cap.out
    errors = [line for line in cap.err.splitlines() if line.startswith("rerender: error: ")]
    assert len(errors) == 1 and expected.replace("{t}", str(shot)) in errors[0], cap.err
    assert snapshot(shot) == before, f"{case}: files changed"


@pytest.mark.parametrize("value", ["bogus", "scalar" if os.uname().machine in ("x86_64", "AMD64") else "sse2"])
def test_an_unknown_simd_path_is_named_before_anything_is_decoded(shot, value):
    """RERENDER_SIMD=bogus (or a path of another architecture) is refused before decoding, with
    the variable and this CPU's paths named, exit 2 and no traceback."""
    before = snapshot(shot)
    env = {**os.environ, "RERENDER_SIMD": value}
    r = subprocess.run([sys.executable, "-m", "rerender", *fill(PO, shot)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and f"RERENDER_SIMD: unknown SIMD path '{value}'" in r.stderr, r.stderr
    assert "this CPU supports" in r.stderr
    assert snapshot(shot) == before


# ------------------------------------------------------------------------------------------------
# the checks behind the refusals, and what they still allow


def test_metrics_json_may_replace_a_users_file_that_is_not_an_input(shot, capsys):
    """--json names the user's explicit target: an existing file that is not an input is replaced."""
    report = shot / "report.json"
    report.write_text("old")
    assert main(["metrics", str(shot / "clip.mp4"), str(shot / "out.mp4"), "--json", str(report)]) == 0
    assert '"metric": "warping_error_mse"' in report.read_text()
    # the same file by another spelling is still the input
    before = (shot / "clip.mp4").read_bytes()
    assert main(["metrics", str(shot / "clip.mp4"), str(shot / "out.mp4"), "--json",
                 str(shot / "somedir" / ".." / "clip.mp4")]) == 2
    assert "must not be the input" in capsys.readouterr().err and (shot / "clip.mp4").read_bytes() == before


def test_a_refused_job_in_an_earlier_runs_work_dir_keeps_it(shot, capsys):
    """Only what this run created is removed: a work directory an earlier run filled stays as it was."""
    assert main(fill(PO, shot)) == 0
    work = shot / "o.work"
    before = snapshot(work)
    assert main(["propagate", str(shot / "frames"), "--keys", str(shot / "keys-wide"), "-o", str(shot / "o")]) == 2
    assert "aspect ratio" in capsys.readouterr().err
    assert snapshot(work) == before


def test_work_dir_created_by_a_refused_run_is_removed_with_the_parents_it_made(tmp_path):
    from rerender.errors import JobError
    from rerender.workdir import MARKER, WorkDir

    (tmp_path / "user").mkdir()
    wd = WorkDir(tmp_path / "user" / "a" / "b" / "shot.work")
    with pytest.raises(JobError):
        with wd.lock():
            wd.update_manifest(frames={})
            (wd.root / "keys").mkdir()  # an empty folder is not a result
            raise JobError("refused")
    assert sorted(p.name for p in (tmp_path / "user").iterdir()) == []  # a/ and b/ were this run's
    # a result in it, or a folder an earlier run made: kept
    with pytest.raises(JobError):
        with wd.lock():
            (wd.frames / "0000.png").parent.mkdir(parents=True)
            (wd.frames / "0000.png").write_bytes(b"x")
            raise JobError("refused after decoding")
    assert (wd.frames / "0000.png").exists()
    (wd.frames / "0000.png").unlink()
    with pytest.raises(JobError):
        with wd.lock():
            raise JobError("refused")
    assert (wd.root / MARKER).exists()  # made by the run before
    # Ctrl-C is not a refusal: what a stopped job made stays even if it is only bookkeeping
    other = WorkDir(tmp_path / "other.work")
    with pytest.raises(KeyboardInterrupt):
        with other.lock():
            raise KeyboardInterrupt
    assert (other.root / MARKER).exists()


@pytest.mark.parametrize("size", [64, 128])
def test_rerenders_own_keys_at_small_working_sizes_propagate(tmp_path, size, capsys):
    """``propagate --keys WORK/keys`` (the hand-off from ``keyframes``) at --size 128 and 64 on a
    107x60 clip, whose working sizes (112x64, 232x128) round the long side by 2-4 px: more than the
    old 1% aspect tolerance, exactly what the working size's rounding to multiples of 8 produces."""
    frames = [media.resize_to(f, (60, 107)) for f in clip(4, 64, 96)]
    inp, keys = write_clip_and_keys(tmp_path, frames, (0, 3))
    cfg = tmp_path / "fast.yaml"
    cfg.write_text(FAST_OPTIONS)
    work = tmp_path / "shot.work"
    common = ["--size", str(size), "--work-dir", str(work), "--config", str(cfg)]
    assert main(["propagate", str(inp), "--keys", str(keys), "-o", str(tmp_path / "a"), *common]) == 0
    h, w = media.read_image(work / "keys" / "0000.png").shape[:2]
    assert (h, w) == media.working_size(107, 60, size) and media.aspect_matches(w, h, 107, 60)
    assert abs(w * 60 - h * 107) > 0.01 * h * 107  # outside the old tolerance
    assert main(["propagate", str(inp), "--keys", str(work / "keys"), "-o", str(tmp_path / "b"), *common]) == 0, \
        capsys.readouterr().err
    for i in range(4):
        assert (tmp_path / "b" / f"{i:04d}.png").read_bytes() == (tmp_path / "a" / f"{i:04d}.png").read_bytes()


def test_a_key_repainted_at_full_size_in_the_work_dir_is_refused_before_any_work(shot, capsys):
    """A full-size key in WORK/keys (which rerender rewrites at the working size) is refused up front,
    naming it: it is not resized over the user's painting, and nothing is decoded or written."""
    work = shot / "w"
    assert main(fill(PO, shot) + ["--size", "16", "--work-dir", str(work)]) == 0
    painted = media.resize_to(media.read_image(shot / "keys" / "0011.png"), (64, 96))
    media.write_image(work / "keys" / "0011.png", painted)
    before = snapshot(shot)
    code = main(["propagate", str(shot / "frames"), "--keys", str(work / "keys"), "-o", str(shot / "o2"),
                 "--size", "16", "--work-dir", str(work), "--config", str(shot / "fast.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "0011.png: key frame is 96x64" in err and "working size 24x16" in err, err
    assert snapshot(shot) == before


def test_key_aspect_tolerance_follows_the_working_size_rounding():
    for src in ((107, 60), (1920, 1080), (854, 480), (60, 107), (4096, 1716)):
        for size in (16, 64, 128, 200, 512, 720):
            h, w = media.working_size(*src, size)
            assert media.aspect_matches(w, h, *src), (src, size, w, h)
    assert not media.aspect_matches(96, 32, 48, 32) and not media.aspect_matches(48, 48, 96, 64)
    assert media.aspect_matches(1930, 1080, 1920, 1080) and not media.aspect_matches(1960, 1080, 1920, 1080)


def test_demo_reruns_in_its_own_folder_and_refuses_anyone_elses(tmp_path, capsys):
    from _stylised_clip import fast_config
    from rerender.demo import run_demo

    out = tmp_path / "demo"
    run_demo(out, frames=4, key_every=3, config=fast_config(), size=(32, 48))
    sheet = (out / "contact_sheet.png").read_bytes()
    run_demo(out, frames=4, key_every=3, config=fast_config(), size=(32, 48))  # its own folder: a rerun
    assert (out / "contact_sheet.png").read_bytes() == sheet
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "result.mp4").write_bytes(b"my film")
    with pytest.raises(ValueError, match="not made by `rerender demo`"):
        run_demo(tmp_path / "mine", frames=4, key_every=3, config=fast_config(), size=(32, 48))
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["result.mp4"]
    assert (tmp_path / "mine" / "result.mp4").read_bytes() == b"my film"
    empty = tmp_path / "empty"
    empty.mkdir()
    run_demo(empty, frames=4, key_every=3, config=fast_config(), size=(32, 48))  # an empty folder is adopted
    assert (empty / "result.mp4").exists()



def test_an_unknown_backend_is_named_before_anything_is_decoded(shot):
    before = snapshot(shot)
    r = subprocess.run([sys.executable, "-m", "rerender", *fill(PO, shot)], env={**os.environ, "RERENDER_BACKEND": "tpu"},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "RERENDER_BACKEND: expected 'cpu', 'cuda' or 'auto', got 'tpu'" in r.stderr
    assert snapshot(shot) == before
