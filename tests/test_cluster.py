"""Propagation on a Dask cluster (issue 12): a LocalCluster of two worker processes on this machine
gives the same bytes as the single-machine job, survives a worker killed mid-run, reports a bad
key frame once, and starts segments while key frames are still being produced."""
import json
import os
import signal
import threading

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import rerender.media as media  # noqa: E402
from _stylised_clip import N, clip, fast_config, stylise, write_clip_and_keys  # noqa: E402
from rerender.cli import main  # noqa: E402
from rerender.errors import ClusterError  # noqa: E402
from rerender.files import DamagedEntry  # noqa: E402
from rerender.job import Job, JobConfig  # noqa: E402
from rerender.pipeline import propagate  # noqa: E402
from rerender.progress import Progress  # noqa: E402
from rerender.propagation import KeyStream  # noqa: E402

KEYS = (0, 10, 20, 30)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as c, distributed.Client(c) as client:
        yield c, client


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    """The 31-frame stylised clip and its single-machine result (the reference bytes)."""
    root = tmp_path_factory.mktemp("shot")
    frames = clip()
    inp, keys = write_clip_and_keys(root, frames, KEYS)
    ref = propagate(inp, keys, root / "ref", config=fast_config())
    return root, frames, inp, keys, read_all(root / "ref"), ref


def read_all(folder, n=N):
    return [(folder / f"{i:04d}.png").read_bytes() for i in range(n)]


def starts(client):
    """Task starts published by rerender's tasks: {task: count} per run (topic)."""
    runs = {}
    for topic, events in client.get_events().items():
        if topic.startswith("rerender-"):
            counts = {}
            for _, msg in events:
                if msg.get("kind") == "start":
                    counts[msg["key"]] = counts.get(msg["key"], 0) + 1
            runs[topic] = counts
    return runs


def test_cluster_run_gives_the_single_machine_bytes(cluster, shot, tmp_path, capsys):
    _, client = cluster
    root, frames, inp, keys, ref_bytes, ref = shot
    steps = []
    res = propagate(inp, keys, tmp_path / "o", config=fast_config(), client=client, progress=Progress("json"),
                    on_step=lambda stage, i: steps.append(stage))
    assert read_all(tmp_path / "o") == ref_bytes
    assert res.synthesized == ref.synthesized == 54 and res.blended == 27 and res.tasks_retried == 0
    assert sorted(res.segments_recomputed) == ["0000-0010", "0010-0020", "0020-0030"]
    assert res.timings["synthesis"] > 0 and res.timings["flow"] > 0
    # the tasks' progress reached the client's bars and on_step
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    prog = [e for e in events if e["event"] == "progress" and e["stage"] == "propagate"]
    assert prog[-1]["done"] == prog[-1]["total"] == 54
    assert steps.count("blend") == 27 and sum(s.startswith("propagate") for s in steps) == 54
    # workers dropped each finished segment's intermediates, as on one machine
    work = tmp_path / "o.work"
    assert sorted(p.name for p in (work / "segments" / "0010-0020").iterdir()) == ["stamp.json"]
    assert not list((work / "flow").rglob("*.npz")) and not list(work.rglob("*.tmp*"))
    # a rerun finds everything done
    again = propagate(inp, keys, tmp_path / "o", config=fast_config(), client=client)
    assert again.synthesized == 0 and again.segments_recomputed == []


def test_segments_on_a_cluster_never_cross_a_shot_cut(cluster, shot, tmp_path):
    _, client = cluster
    root, frames, inp, keys, _, _ = shot
    one = propagate(inp, keys, tmp_path / "one", config=fast_config(), cuts=[15])
    many = propagate(inp, keys, tmp_path / "many", config=fast_config(), cuts=[15], client=client)
    names = ["0000-0010", "0010-cut0015", "0020-0030", "cut0015-0020"]
    assert sorted(one.segments_recomputed) == sorted(many.segments_recomputed) == names
    assert read_all(tmp_path / "many") == read_all(tmp_path / "one")
    assert read_all(tmp_path / "many") != read_all(root / "ref")  # the cut changed frames 11..19


def test_a_worker_killed_mid_run_is_replaced_and_the_bytes_do_not_change(cluster, tmp_path):
    _, client = cluster
    # frames big enough that a pass takes seconds: the kill lands inside a running task
    frames = clip(31, 128, 192)
    inp, keys = write_clip_and_keys(tmp_path, frames, KEYS)
    cfg = fast_config(search_vote_iters=4, patchmatch_iters=3)
    propagate(inp, keys, tmp_path / "one", config=cfg)
    pids = client.run(os.getpid)
    killed = []

    def kill_a_busy_worker(stage, index):
        if stage.startswith("propagate") and not killed:
            busy = max(client.processing().items(), key=lambda kv: len(kv[1]))[0]
            killed.append(pids[busy])
            os.kill(pids[busy], signal.SIGKILL)

    res = propagate(inp, keys, tmp_path / "o", config=cfg, client=client, on_step=kill_a_busy_worker)
    assert killed and res.tasks_retried >= 1
    assert read_all(tmp_path / "o") == read_all(tmp_path / "one")
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it


def test_a_bad_key_frame_fails_the_job_once_with_its_error(cluster, tmp_path, capsys):
    c, client = cluster
    frames = clip(21)
    inp, keys = write_clip_and_keys(tmp_path, frames, (0, 10, 20))
    work = tmp_path / "w"

    def corrupt(stage, index):  # after the key frames were checked and copied: only the workers see it
        if stage == "decode" and index == 0:
            (work / "keys" / "0010.png").write_bytes(b"not a png")

    before = set(starts(client))
    # (its recorded digest no longer matches: a rerun copies the key again from --keys)
    with pytest.raises(DamagedEntry, match=r"keys/0010.png: is not the file rerender wrote there"):
        propagate(inp, keys, tmp_path / "o", work_dir=work, config=fast_config(), client=client, on_step=corrupt)
    (run,) = set(starts(client)) - before
    counts = starts(client)[run]
    # the two passes that read key 10 failed once each and were not retried; nothing runs any more
    assert counts.get("0000-0010/bwd") == 1 and counts.get("0010-0020/fwd") == 1
    assert all(n == 1 for n in counts.values())
    assert all(not tasks for tasks in client.processing().values())
    # from the command line: the message once, exit status 2, no traceback
    (work / "keys" / "0010.png").unlink()
    fast = tmp_path / "fast.yaml"
    fast.write_text("search_vote_iters: 3\npatchmatch_iters: 2\n")
    media.write_image(keys / "0010.png", np.zeros((64, 64, 3), np.uint8))  # wrong aspect: refused up front
    code = main(["propagate", str(inp), "--keys", str(keys), "-o", str(tmp_path / "o2"), "--config", str(fast),
                 "--scheduler", c.scheduler_address])
    err = capsys.readouterr().err
    assert code == 2 and err.count("0010.png: key frame is 64x64") == 1 and "Traceback" not in err


def test_segments_start_while_key_frames_are_still_coming(cluster, shot, tmp_path):
    """rerender run --scheduler: each key is handed over as the key-frame stage writes it."""
    _, client = cluster
    root, frames, inp, keys, ref_bytes, ref = shot
    job = Job.open(inp, JobConfig(work_dir=str(tmp_path / "w")), output=tmp_path / "o")
    with job.wd.lock():
        job.decode(Progress("quiet"))
        stream = KeyStream(job, list(KEYS), fast_config(), Progress("quiet"), client)
        for k in KEYS[:3]:  # the "diffusion stage" writes keys 0, 10, 20 ...
            media.write_image(job.wd.key_path(k), stylise(frames[k]))
            stream.key_ready(k)
        # ... and segments 0000-0010 and 0010-0020 get done while key 30 is not there yet
        finished = threading.Event()
        seg = job.wd.segments

        def both_done():
            return all((json.loads((seg / s / "stamp.json").read_text()).get("blend") if (seg / s / "stamp.json").exists()
                        else None) for s in ("0000-0010", "0010-0020"))

        for _ in range(600):
            if both_done():
                finished.set()
                break
            finished.wait(0.1)
        assert finished.is_set() and not (seg / "0020-0030").exists()
        media.write_image(job.wd.key_path(30), stylise(frames[30]))
        stream.key_ready(30)
        res = stream.finish(tmp_path / "o")
    assert read_all(tmp_path / "o") == ref_bytes and res.synthesized == 54


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import rerender.cluster as cluster_module

    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT_S", 2.0)
    inp, keys = write_clip_and_keys(tmp_path, clip(12, 32, 48), (0, 11))
    code = main(["propagate", str(inp), "--keys", str(keys), "-o", str(tmp_path / "o"),
                 "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "--scheduler tcp://127.0.0.1:9: cannot reach a Dask scheduler" in err
    assert "Traceback" not in err
    with pytest.raises(TypeError, match="distributed.Client"):
        propagate(inp, keys, tmp_path / "o", config=fast_config(), client="tcp://127.0.0.1:9")
    assert not (tmp_path / "o.work").exists()  # refused before anything was written
    with pytest.raises(ClusterError, match="cannot reach"):
        cluster_module.connect("tcp://127.0.0.1:9")


def test_rerender_run_on_a_cluster_matches_one_machine(cluster, tiny_model, tmp_path, capsys):
    """Key frames by diffusion here (a tiny random model), propagation on the cluster: same bytes."""
    pytest.importorskip("diffusers")
    from _clips import write_sequence

    c, _ = cluster
    model, cn = tiny_model
    inp = tmp_path / "clip"
    write_sequence(inp, clip(7, 32, 32))

    def run(out, *extra):
        argv = ["--progress", "json", "run", str(inp), "--prompt", "a cat", "--model", str(model), "--controlnet",
                str(cn), "--control", "canny", "--interval", "3", "--steps", "4", "-o", str(out),
                "--config", str(fast), *extra]
        assert main(argv) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]

    fast = tmp_path / "fast.yaml"
    fast.write_text("propagation:\n  search_vote_iters: 3\n  patchmatch_iters: 2\n")
    run(tmp_path / "one")
    events = run(tmp_path / "many", "--scheduler", c.scheduler_address)
    assert read_all(tmp_path / "many", 7) == read_all(tmp_path / "one", 7)
    stages = [e["stage"] for e in events if e["event"] == "stage"]
    # propagation's bars open before the key-frame stage is done: segments start as keys arrive
    assert stages.index("propagate") < stages.index("keyframes")
    assert events[-1] == {"event": "done", "output": str(tmp_path / "many"),
                          "files": [str(tmp_path / "many" / f"{i:04d}.png") for i in range(7)]}
