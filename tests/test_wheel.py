"""The built wheel installs into a fresh environment without a compiler and runs the demo."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="auditwheel repairs Linux wheels")
def test_wheel_installs_and_runs_the_demo_without_a_compiler(rerender_wheel, tmp_path):
    # scripts/build_wheel.sh (run by the fixture, as the README says) made it a manylinux wheel,
    # vendoring the OpenMP runtime; that is what gets installed
    wheel = rerender_wheel
    assert "manylinux_" in wheel.name and not (wheel.parent / "raw").exists()
    assert [p.name for p in wheel.parent.iterdir()] == [wheel.name]  # no scratch folder left beside it
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
    # the OpenFX bundle ships in the wheel: `rerender ofx install` finds it in the installed package
    # (not only in an editable build) and its copy needs nothing from the package's folder
    # (auditwheel must not have tied it to rerender.libs by a relative RPATH)
    plugins = tmp_path / "ofx"
    res = subprocess.run([str(venv / "bin" / "rerender"), "ofx", "install", "--dir", str(plugins)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    binary = plugins / "Rerender.ofx.bundle" / "Contents" / "Linux-x86-64" / "Rerender.ofx"
    assert binary.is_file()
    worker = json.loads((plugins / "Rerender.ofx.bundle" / "Contents" / "Resources" / "rerender-worker.json").read_text())
    assert Path(worker["python"]).parent == venv / "bin"
    deps = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=60).stdout
    assert "not found" not in deps and "rerender.libs" not in deps, deps


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bash script")
def test_build_wheel_script_leaves_nothing_in_out_when_the_repair_fails(tmp_path):
    """A failing auditwheel (here: a stand-in interpreter whose repair writes half a wheel and fails)
    must not leave a wheel in OUT that a later step would pick up; pip and the build are stood in for
    too, so that nothing is compiled."""
    fake = tmp_path / "python"
    fake.write_text(f"""#!/usr/bin/env bash
case "$*" in
  "-m pip install"*) exit 0 ;;
  "-m pip wheel"*) dest=$(echo "$*" | sed -e 's/.* -w \\([^ ]*\\) .*/\\1/'); mkdir -p "$dest"
                   echo raw > "$dest/rerender-0.1.0-cp311-cp311-linux_x86_64.whl" ;;
  "-m auditwheel repair"*) dest=$(echo "$*" | sed -e 's/.* -w \\([^ ]*\\) .*/\\1/'); mkdir -p "$dest"
                   echo half > "$dest/rerender-0.1.0-cp311-cp311-manylinux_2_34_x86_64.whl"
                   echo "patchelf: not found" >&2; exit 1 ;;
  *) exec {sys.executable} "$@" ;;
esac
""")
    fake.chmod(0o755)
    out = tmp_path / "dist"
    out.mkdir()
    (out / "keep.txt").write_text("unrelated")
    res = subprocess.run(["bash", str(ROOT / "scripts" / "build_wheel.sh"), str(out)], capture_output=True, text=True,
                         env=dict(os.environ, PYTHON=str(fake)), timeout=300, cwd=tmp_path)
    assert res.returncode != 0 and "patchelf: not found" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"], list(out.iterdir())
