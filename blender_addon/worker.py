"""The out-of-process worker: command lines, the subprocess, and its JSON-lines progress.

Pure Python (no bpy, no numpy) so that it is unit-testable outside Blender. The worker is
``<python> -m rerender <command> ... --progress json``; it prints one JSON object per line:
  {"event": "stage", "stage": NAME, "total": N}
  {"event": "progress", "stage": NAME, "done": K, "total": N}
  {"event": "log", "message": TEXT}
  {"event": "done", "output": PATH[, "files": [FRAME FILES in frame order]]}
  {"event": "error", "message": TEXT}      (and then exits non-zero)
"""
from __future__ import annotations

import collections
import importlib.util
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Deque, Dict, List, Optional, Sequence, Tuple

MODES = ("translate", "preview", "propagate")
EVENTS = ("stage", "progress", "log", "done", "error", "info", "metrics")


@dataclass
class JobRequest:
    """Everything one worker run needs; ``frames`` = (A, B): zero-based source frames, B exclusive."""

    mode: str
    input_path: str
    output_dir: str
    frames: Tuple[int, int]
    work_dir: str = ""
    size: int = 0  # short side of the working size; 0 = the CLI's default
    keys_dir: str = ""  # "propagate": the folder of painted key frames (NNNN.png)
    prompt: str = ""
    negative_prompt: str = ""
    model: str = ""  # hub id, local folder or single .safetensors/.ckpt file; "" = CLI default
    lora: str = ""
    lora_scale: float = 1.0
    control: str = ""  # ControlNet condition: "hed" or "canny"; "" = CLI default
    controlnet: str = ""  # ControlNet model (hub id, folder or file); "" = CLI default for `control`
    control_strength: Optional[float] = None
    key_interval: Optional[int] = None
    strength: Optional[float] = None
    seed: Optional[int] = None
    matte: str = ""  # a matte file or folder (one frame per source frame, or a single image); "" = none
    matte_feather: float = 0.0

    def validate(self) -> None:
        """Raise ValueError naming the first field that cannot make a valid command."""
        if self.mode not in MODES:
            raise ValueError(f"mode: {self.mode!r} is not one of {', '.join(MODES)}")
        if not self.input_path:
            raise ValueError("input_path: the strip has no media file")
        if not self.output_dir:
            raise ValueError("output_dir: no output folder given")
        a, b = self.frames
        if not (0 <= a < b):
            raise ValueError(f"frames: ({a}, {b}) is not a non-empty range of source frames")
        if self.size < 0:
            raise ValueError(f"size: {self.size} must be >= 0 (0 = default)")
        if self.mode == "propagate" and not self.keys_dir:
            raise ValueError("keys_dir: 'propagate my key frames' needs a folder of key frames")
        if self.matte_feather < 0:
            raise ValueError(f"matte_feather: {self.matte_feather} must be >= 0")
        if self.mode in ("translate", "preview") and not self.prompt.strip():
            raise ValueError("prompt: a text prompt is needed to render key frames")


def build_command(python: str, req: JobRequest) -> List[str]:
    """The worker's argument vector for ``req`` (the one place command lines are made).

    propagate -> ``rerender propagate INPUT --keys DIR -o OUT --frames A:B``
    translate -> ``rerender run INPUT -o OUT --frames A:B --prompt ...``
    preview   -> ``rerender keyframes INPUT -o OUT --frames A:B --prompt ... --first-only``
                 (writes the first key frame to WORK/keys/AAAA.png and reports that folder)
    """
    if not python:
        raise ValueError("worker python: no Python executable set (add-on preferences)")
    req.validate()
    a, b = req.frames
    sub = {"propagate": "propagate", "translate": "run", "preview": "keyframes"}[req.mode]
    cmd = [python, "-m", "rerender", sub, req.input_path]
    if req.mode == "propagate":
        cmd += ["--keys", req.keys_dir]
    cmd += ["-o", req.output_dir, "--frames", f"{a}:{b}"]
    if req.size:
        cmd += ["--size", str(req.size)]
    if req.work_dir:
        cmd += ["--work-dir", req.work_dir]
    if req.matte:
        cmd += ["--matte", req.matte]
        if req.matte_feather:
            cmd += ["--matte-feather", f"{req.matte_feather:g}"]
    if req.mode != "propagate":
        cmd += ["--prompt", req.prompt]
        optional = [
            ("--negative-prompt", req.negative_prompt or None),
            ("--model", req.model or None),
            # Always FILE:SCALE: a bare path ending in ":<number>" would be misread as a scale.
            ("--lora", f"{req.lora}:{req.lora_scale:g}" if req.lora else None),
            ("--control", req.control or None),
            ("--controlnet", req.controlnet or None),
            ("--control-strength", req.control_strength),
            ("--strength", req.strength),
            ("--seed", req.seed),
        ]
        if req.mode == "translate":
            optional.append(("--interval", req.key_interval))
        for flag, value in optional:
            if value is not None:
                cmd += [flag, str(value)]
        if req.mode == "preview":
            cmd.append("--first-only")
    cmd += ["--progress", "json"]
    return cmd


def parse_event(line: str) -> Optional[Dict]:
    """One stdout line -> an event dict, or None for a blank line.

    A line that is not a protocol object (a stray print in the worker, a library warning) becomes a
    "log" event, so it is shown rather than lost and never breaks the job.
    """
    text = line.strip()
    if not text:
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return {"event": "log", "message": text}
    if not isinstance(obj, dict) or obj.get("event") not in EVENTS:
        return {"event": "log", "message": text}
    return obj


def _count(value, default: int = 0) -> int:
    """A count from an event field; a malformed one must not stop the job's UI."""
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return default


class JobProgress:
    """Folds worker events into what the UI shows: stage, counts, last message, outcome."""

    def __init__(self) -> None:
        self.stage = ""
        self.done = 0
        self.total = 0
        self.message = ""
        self.output: Optional[str] = None
        self.files: List[str] = []  # the frame files the worker wrote, in frame order
        self.error: Optional[str] = None
        self.stages_seen: List[str] = []

    def feed(self, event: Dict) -> None:
        kind = event.get("event")
        if kind == "stage":
            self.stage = str(event.get("stage", ""))
            self.total = _count(event.get("total"))
            self.done = 0
            self.stages_seen.append(self.stage)
        elif kind == "progress":
            self.stage = str(event.get("stage", self.stage))
            self.done = _count(event.get("done"))
            self.total = _count(event.get("total"), self.total)
        elif kind == "log":
            self.message = str(event.get("message", ""))
        elif kind == "done":
            self.output = str(event.get("output", ""))
            files = event.get("files")
            self.files = [str(f) for f in files] if isinstance(files, list) else []
        elif kind == "error":
            self.error = str(event.get("message", "")) or "the worker reported an error"

    @property
    def fraction(self) -> float:
        """Completed fraction of the current stage, in [0, 1]."""
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0

    def text(self) -> str:
        if self.stage and self.total:
            return f"{self.stage} {self.done}/{self.total}"
        return self.stage or self.message or "starting"


class WorkerProcess:
    """A running worker: reads its stdout events and stderr tail on threads, never blocking the UI.

    The worker runs in its own process group (POSIX) so that cancelling also ends any processes it
    started itself (e.g. a multiprocessing pool).
    """

    def __init__(self, cmd: Sequence[str], env: Optional[Dict[str, str]] = None,
                 cwd: Optional[str] = None, stderr_lines: int = 40):
        self.cmd = list(cmd)
        self.env = env
        self.cwd = cwd
        self.proc: Optional[subprocess.Popen] = None
        self._events: "queue.Queue[Dict]" = queue.Queue()
        self._stderr: Deque[str] = collections.deque(maxlen=stderr_lines)
        self._threads: List[threading.Thread] = []
        self.cancelled = False

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        kwargs = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True
        else:
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        try:
            self.proc = subprocess.Popen(
                self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.cwd, text=True, encoding="utf-8", errors="replace",
                bufsize=1, **kwargs)
        except OSError as exc:
            raise RuntimeError(f"cannot start the worker {self.cmd[0]!r}: {exc}") from exc
        for target, stream in ((self._read_stdout, self.proc.stdout), (self._read_stderr, self.proc.stderr)):
            t = threading.Thread(target=target, args=(stream,), daemon=True)
            t.start()
            self._threads.append(t)

    def _read_stdout(self, stream) -> None:
        for line in stream:
            event = parse_event(line)
            if event is not None:
                self._events.put(event)
        stream.close()

    def _read_stderr(self, stream) -> None:
        for line in stream:
            if line.strip():
                self._stderr.append(line.rstrip())
        stream.close()

    def events(self, timeout: float = 0.0) -> List[Dict]:
        """Events received so far; waits up to ``timeout`` seconds for the first one."""
        out: List[Dict] = []
        try:
            out.append(self._events.get(timeout=timeout) if timeout > 0 else self._events.get_nowait())
            while True:
                out.append(self._events.get_nowait())
        except queue.Empty:
            pass
        return out

    def finished(self) -> bool:
        """True once the process has exited and all of its output has been read."""
        if self.proc is None or self.proc.poll() is None:
            return False
        for t in self._threads:
            t.join(timeout=5.0)
        return True

    @property
    def returncode(self) -> Optional[int]:
        return self.proc.poll() if self.proc else None

    def stderr_tail(self) -> List[str]:
        return list(self._stderr)

    def cancel(self, grace: float = 3.0) -> None:
        """Stop the worker: terminate (SIGTERM to its group), then kill after ``grace`` seconds."""
        self.cancelled = True
        if self.proc is None or self.proc.poll() is not None:
            return
        self._signal(terminate=True)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal(terminate=False)
            self.proc.wait(timeout=10.0)
        if os.name == "posix":
            # Children of the worker that ignored SIGTERM must not outlive the job either.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for t in self._threads:
            t.join(timeout=5.0)

    def _signal(self, terminate: bool) -> None:
        assert self.proc is not None
        if os.name == "posix":
            try:
                os.killpg(self.proc.pid, signal.SIGTERM if terminate else signal.SIGKILL)
            except ProcessLookupError:
                pass
        elif terminate:
            self.proc.terminate()
        else:
            self.proc.kill()

    def failure_message(self, progress: JobProgress) -> Optional[str]:
        """Why a finished worker failed (None if it succeeded): its error event, else stderr's tail."""
        code = self.returncode
        if progress.error:
            return progress.error
        if code == 0 and progress.output is not None:
            return None
        tail = [line for line in self.stderr_tail() if line.strip()]
        detail = tail[-1] if tail else "no error message"
        if code == 0:
            return f"the worker exited without reporting an output ({detail})"
        return f"the worker exited with code {code}: {detail}"


def worker_environment(base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment for the worker: the caller's, minus Blender's own Python settings.

    Blender may set PYTHONHOME/PYTHONPATH for its bundled interpreter; the worker is a different
    Python and would import the wrong standard library with them.
    """
    env = dict(os.environ if base is None else base)
    for key in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE"):
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def bundled_site() -> Optional[str]:
    """The folder from which Blender's own Python imports the rerender bundled with the extension
    (its wheels are installed with it), or None when there is none."""
    spec = importlib.util.find_spec("rerender")
    if spec is None or not spec.origin:
        return None
    return os.path.dirname(os.path.dirname(os.path.abspath(spec.origin)))


def choose_worker(mode: str, configured_python: str,
                  site: Optional[str] = None) -> Tuple[str, Dict[str, str]]:
    """(Python executable, environment) for a job.

    A Worker Python set in the preferences runs every job. Without one, "propagate" runs on
    Blender's own Python with the bundled rerender (``site``, default :func:`bundled_site`);
    diffusion needs torch and diffusers, which are too large to bundle, so it needs the Worker Python.
    """
    if configured_python:
        return configured_python, worker_environment()
    site = bundled_site() if site is None else site
    if mode == "propagate" and site:
        env = worker_environment()
        env["PYTHONPATH"] = site
        env["PYTHONNOUSERSITE"] = "1"  # nothing from the user's own site-packages shadows the bundle
        return sys.executable, env
    if mode == "propagate":
        raise ValueError("This installation of the extension has no bundled rerender: install the extension "
                         "zip built for your platform, or set Worker Python in the add-on preferences")
    raise ValueError("Full translation and preview need a Worker Python with torch and diffusers (too large to "
                     "bundle): set it in the add-on preferences. Propagate My Key Frames needs none")


def check_worker(python: str, timeout: float = 120.0) -> Tuple[bool, str]:
    """Whether ``python`` can run full translations, and a message saying what it has or lacks:
    its Python and rerender versions, torch and diffusers, and the CUDA device."""
    try:
        proc = subprocess.run([python, "-m", "rerender", "--progress", "json", "info"], capture_output=True,
                              text=True, timeout=timeout, env=worker_environment(), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"cannot run {python!r}: {exc}"
    info = next((e for e in map(parse_event, proc.stdout.splitlines()) if e and e.get("event") == "info"), None)
    if proc.returncode != 0 or info is None:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        if "No module named rerender" in proc.stderr:
            return False, f"rerender is not installed in {python} (pip install rerender)"
        return False, f"{python} failed: {tail}"
    packages = info.get("packages", {})
    torch = info.get("torch", {})
    head = f"Python {info.get('python')}, rerender {packages.get('rerender', '?')}"
    if not torch.get("installed") or "diffusers" not in packages:
        return False, f"{head}; no torch/diffusers: full translation needs pip install \"rerender[diffusion]\""
    gpu = ", ".join(torch.get("devices", [])) if torch.get("cuda_available") else "no CUDA device (CPU: very slow)"
    return True, f"{head}; torch {torch.get('version')}, diffusers {packages['diffusers']}; {gpu}"


def model_family(python: str, model: str, env: Optional[Dict[str, str]] = None, timeout: float = 120.0) -> str:
    """'Family: LABEL' of a local model folder or single file as the worker's rerender reads it
    (``rerender info --json --model``: the add-on itself never imports rerender), or why not."""
    try:
        proc = subprocess.run([python, "-m", "rerender", "info", "--json", "--model", model], capture_output=True,
                              text=True, timeout=timeout, env=env or worker_environment(), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"Family unknown: cannot run {python!r}: {exc}"
    try:
        found = json.loads(proc.stdout)["model"]
    except (ValueError, KeyError, TypeError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"Family unknown: {tail}"
    if "label" in found:
        return f"Family: {found['label']}"
    return f"Family unknown: {found.get('error', 'not reported')}"


def run_to_completion(worker: WorkerProcess, progress: JobProgress,
                      on_event: Optional[Callable[[Dict], None]] = None,
                      poll_interval: float = 0.1) -> Optional[str]:
    """Run a started worker to its end (blocking); returns its failure message or None.

    KeyboardInterrupt (Ctrl+C in ``blender -b``) cancels the worker and is re-raised.
    """
    try:
        while True:
            for event in worker.events(timeout=poll_interval):
                progress.feed(event)
                if on_event is not None:
                    on_event(event)
            if worker.finished():
                for event in worker.events():
                    progress.feed(event)
                    if on_event is not None:
                        on_event(event)
                return worker.failure_message(progress)
    except KeyboardInterrupt:
        worker.cancel()
        raise

