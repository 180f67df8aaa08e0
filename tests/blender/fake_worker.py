"""A test double for the rerender worker: speaks the JSON-lines progress protocol.

Usage: fake_worker.py BEHAVIOUR [-m rerender SUBCOMMAND ...ignored]
  slow   stage + one progress event, starts a child process (to check that cancel ends the whole
         process group), logs "worker PID child PID", then sleeps until killed
  error  stage + progress, then {"event": "error", ...} naming the --keys folder, exit code 2
  crash  a traceback-like line on stderr and exit code 3, no events
  noise  a non-JSON line, then stage/progress/done, exit 0
  preview  like `rerender keyframes --first-only`: writes WORK/keys/AAAA.png (A from --frames, a
         flat colour) and reports WORK/keys as its output
"""
import json
import os
import subprocess
import sys
import time


def emit(**obj):
    print(json.dumps(obj), flush=True)


def arg_after(flag: str) -> str:
    argv = sys.argv
    return argv[argv.index(flag) + 1] if flag in argv else ""


def main() -> int:
    behaviour = sys.argv[1]
    if behaviour == "slow":
        emit(event="stage", stage="flow", total=100)
        emit(event="progress", stage="flow", done=1, total=100)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        emit(event="log", message=f"worker {os.getpid()} child {child.pid}")
        time.sleep(300)
        return 0
    if behaviour == "error":
        emit(event="stage", stage="frames", total=4)
        emit(event="progress", stage="frames", done=1, total=4)
        emit(event="error", message=f"--keys: folder {arg_after('--keys')} does not exist")
        return 2
    if behaviour == "crash":
        print("Traceback (most recent call last):\nRuntimeError: fake crash in the worker",
              file=sys.stderr, flush=True)
        return 3
    if behaviour == "noise":
        print("a stray print from a library", flush=True)
        emit(event="stage", stage="blend", total=2)
        emit(event="progress", stage="blend", done=2, total=2)
        emit(event="done", output=arg_after("-o"))
        return 0
    if behaviour == "preview":
        import cv2
        import numpy as np

        first = int(arg_after("--frames").split(":")[0])
        keys = os.path.join(arg_after("--work-dir"), "keys")
        os.makedirs(keys, exist_ok=True)
        emit(event="stage", stage="diffusion", total=1)
        cv2.imwrite(os.path.join(keys, f"{first:04d}.png"), np.full((64, 96, 3), (40, 200, 90), np.uint8))
        emit(event="progress", stage="diffusion", done=1, total=1)
        emit(event="done", output=keys)
        return 0
    print(f"fake_worker: unknown behaviour {behaviour!r}", file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main())
