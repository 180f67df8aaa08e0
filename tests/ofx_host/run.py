"""Run one host scenario in this process and write what happened as JSON (``python -m ofx_host.run
SPEC.json OUTDIR``). The tests start it as a child process so that a plug-in that crashes or hangs
fails the test instead of killing pytest.

SPEC (JSON)::

    bundle        path of Rerender.ofx.bundle
    env           variables set before the bundle is loaded (RERENDER_OFX_PYTHON, RERENDER_OFX_CACHE)
    offer_suites  false: fetchSuite answers NULL for every suite
    depth         the host's pixel depth (default OfxBitDepthFloat); row_order, row_padding: image layout
    describe_only stop after Load/Describe/DescribeInContext
    context       the context to instantiate (default general)
    clips         {name: {"npy": FILE (N x H x W x C), "first": FRAME, "fps": F, "premult": P}}; absent =
                  unconnected; P (default: unpremultiplied with 4 channels, else opaque) as a host marks
                  a clip that it gives as RGBA whatever the footage has (OfxImageOpaque: alpha is 1)
    params        {name: value} set as user edits after the instance is created
    snapshot      a folder (the worker cache) whose finished frames and stamps are listed after each step
    steps         [{"render": [frames], "threads": T, "instances": I, "sequence": bool (one Begin/End
                  SequenceRender around the frames), "save": bool, "params": {...},
                  "edits": [{"clip": NAME, "frame": F, "gain": G}] (pixels changed upstream before the step),
                    "abort": {"after_updates": N} or {"segment_finished": DIR}}]: when the
                  host's abort() (and progressUpdate's reply) turns to "stop"

OUTDIR/result.json holds the statuses, the plug-in's description, messages, progress, fetched
images, host-detected spec violations and the processes left behind after each step; rendered
frames go to OUTDIR/<step>_<frame>.npy.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from . import ofx
from .host import Host
from .images import ClipData
from .instance import Instance


def descendants(pid: int | None = None) -> list[dict]:
    """The live descendants of ``pid`` (default: this process), from /proc (zombies excluded)."""
    pid = pid or os.getpid()
    children: dict[int, list[int]] = {}
    info: dict[int, dict] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid = fields[0], int(fields[1])
        if state == "Z":
            continue
        children.setdefault(ppid, []).append(int(entry))
        info[int(entry)] = {"pid": int(entry), "cmd": cmd}
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(info[p])
        todo.extend(children.get(p, []))
    return out


def wait_no_descendants(timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    left = descendants()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = descendants()
    return left


def snapshot(root: str | None) -> dict:
    """{path: [inode, mtime_ns]} of the finished work under ``root`` (output frames and segment
    stamps of any rerender work directory there): what a resumed job must leave untouched."""
    if not root:
        return {}
    out = {}
    for pattern in ("**/out/*", "**/segments/*/stamp.json"):
        for p in Path(root).glob(pattern):
            try:
                st = p.stat()
                if p.name == "stamp.json" and json.loads(p.read_text()).get("blend") is None:
                    continue   # a segment still being computed
            except (OSError, ValueError):
                continue
            out[str(p.relative_to(root))] = [st.st_ino, st.st_mtime_ns]
    return out


def abort_condition(spec: dict | None):
    if not spec:
        return None
    if "after_updates" in spec:
        n = int(spec["after_updates"])
        return lambda host: sum(1 for e, _ in host.record.progress if e == "update") >= n
    if "segment_finished" in spec:
        root = Path(spec["segment_finished"])

        def finished(host) -> bool:
            for stamp in root.glob("**/segments/*/stamp.json"):
                try:
                    if json.loads(stamp.read_text()).get("blend") is not None:
                        return True
                except (OSError, ValueError):
                    continue
            return False
        return finished
    raise ValueError(f"unknown abort condition {spec}")


def load_clips(spec: dict) -> dict[str, ClipData]:
    clips = {}
    for name, c in (spec.get("clips") or {}).items():
        stack = np.load(c["npy"])
        first = int(c.get("first", 1))
        clips[name] = ClipData({first + i: stack[i] for i in range(len(stack))}, float(c.get("fps", 24.0)),
                               c.get("premult"))
    return clips


def run(spec: dict, out: Path) -> dict:
    for k, v in (spec.get("env") or {}).items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = str(v)
    host = Host(offer_suites=spec.get("offer_suites", True), depth=spec.get("depth", ofx.DEPTH_FLOAT),
                row_order=spec.get("row_order", "bottom_up"), row_padding=int(spec.get("row_padding", 0)))
    result: dict = {"steps": []}

    def finish() -> dict:
        r = host.record
        result.update(messages=r.messages, progress=r.progress, fetched=r.fetched, released=r.released,
                      actions=r.actions, violations=r.violations, callback_errors=r.callback_errors,
                      suites_asked=r.suites_asked)
        return result

    result["load_status"] = host.load(spec["bundle"])
    if result["load_status"] != ofx.STAT_OK:
        result["unload_status"] = host.unload()   # only when Load itself succeeded
        return finish()
    result["description"] = host.description()
    if spec.get("describe_only"):
        result["unload_status"] = host.unload()
        return finish()
    clips = load_clips(spec)
    context = spec.get("context", ofx.CONTEXT_GENERAL)
    instances: list[Instance] = []

    def new_instance() -> Instance | None:
        inst = Instance(host, context, clips)
        status = inst.create()
        result.setdefault("create_status", []).append(status)
        if status != ofx.STAT_OK:
            return None
        for name, value in (spec.get("params") or {}).items():
            result.setdefault("param_status", {})[name] = inst.set_param(name, value)
        instances.append(inst)
        return inst

    first = new_instance()
    if first is None:
        return finish()
    result["params_after_create"] = {n: first.param_value(n) for n in first.params.order}
    result["clip_preferences"] = first.clip_prefs
    if context == ofx.CONTEXT_GENERAL:
        result["time_domain"] = first.time_domain()
    for si, step in enumerate(spec.get("steps") or []):
        host.abort_when = abort_condition(step.get("abort"))
        host.aborting = False
        n_inst = int(step.get("instances", 1))
        while len(instances) < n_inst:
            if new_instance() is None:
                return finish()
        for edit in step.get("edits") or []:   # the footage upstream changed (a repainted plate)
            data = clips[edit["clip"]].frames
            data[int(edit["frame"])] = (data[int(edit["frame"])].astype(np.float32) * float(edit["gain"])).astype(
                data[int(edit["frame"])].dtype)
        for name, value in (step.get("params") or {}).items():
            for inst in instances:
                result.setdefault("param_status", {})[f"{si}:{name}"] = inst.set_param(name, value)
        frames = [float(f) for f in step.get("render", [])]
        n_threads = max(1, int(step.get("threads", 1)))
        statuses: dict[str, int] = {}
        progress_from = len(host.record.progress)
        started = time.monotonic()
        if n_threads == 1:
            # "sequence": one Begin/EndSequenceRender around all the frames (a batch render), else one per frame
            sequence = bool(step.get("sequence")) and frames
            if sequence:
                statuses["begin"] = instances[0].begin_sequence(min(frames), max(frames))
            for f in frames:
                st, img = instances[0].render(f, bracket=not sequence)
                statuses[str(int(f))] = st
                if img is not None and step.get("save", True):
                    np.save(out / f"{si}_{int(f)}.npy", img)
            if sequence:
                statuses["end"] = instances[0].end_sequence(min(frames), max(frames))
        else:
            barrier = threading.Barrier(n_threads)

            def worker(k: int) -> None:
                inst = instances[k % len(instances)]
                mine = frames[k::n_threads]
                barrier.wait()
                for f in mine:
                    st, img = inst.render(f)
                    statuses[str(int(f))] = st
                    if img is not None and step.get("save", True):
                        np.save(out / f"{si}_{int(f)}.npy", img)

            threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        left = wait_no_descendants(float(step.get("settle", 10.0)))
        result["steps"].append({"statuses": statuses, "seconds": time.monotonic() - started,
                                "aborted": host.aborting, "progress": host.record.progress[progress_from:],
                                "children_left": left, "snapshot": snapshot(spec.get("snapshot"))})
    for inst in instances:
        result.setdefault("destroy_status", []).append(inst.destroy())
    result["unload_status"] = host.unload()
    result["children_at_exit"] = wait_no_descendants(5.0)
    return finish()


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    result = run(spec, out)
    (out / "result.json").write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
