"""``rerender ofx install/uninstall`` and ``rerender info``'s report of the OpenFX bundle: files land
where hosts look, the worker Python is recorded, bundles rerender did not install are never
replaced or removed."""
from __future__ import annotations

import ctypes
import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rerender.ofx as rofx

BINARY = Path("Contents") / "Linux-x86-64" / "Rerender.ofx"


@pytest.fixture()
def env(tmp_path, monkeypatch) -> dict:
    """An isolated user: its own data, cache and plugin-path folders (never the system's)."""
    plugins = tmp_path / "ofx-plugins"
    values = {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
              "OFX_PLUGIN_PATH": str(plugins)}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("RERENDER_OFX_PYTHON", raising=False)
    monkeypatch.delenv("RERENDER_OFX_CACHE", raising=False)
    return dict(os.environ)


@pytest.fixture()
def built() -> Path:
    if sys.platform != "linux":
        pytest.skip("the test checks the Linux bundle layout")
    path = rofx.bundle_path()
    if path is None:
        pytest.skip("the OFX bundle was not built (RERENDER_OFX off or unsupported platform)")
    return path


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rerender", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_install_copies_the_bundle_and_records_the_worker(env, built, tmp_path):
    target = tmp_path / "my plugins"
    r = cli(env, "ofx", "install", "--dir", str(target))
    assert r.returncode == 0, r.stderr
    bundle = target / "Rerender.ofx.bundle"
    assert filecmp.cmp(bundle / BINARY, built / BINARY, shallow=False)
    marker = json.loads((bundle / "Contents" / "Resources" / rofx.WORKER_FILE).read_text())
    assert marker["python"] == str(Path(sys.executable).absolute())
    assert marker["installed_by"] == rofx.INSTALLED_BY and marker["version"] == rofx.__version__
    # a real shared library with the two OFX entry points
    lib = ctypes.CDLL(str(bundle / BINARY))
    lib.OfxGetNumberOfPlugins.restype = ctypes.c_int
    assert lib.OfxGetNumberOfPlugins() == 1 and lib.OfxGetPlugin is not None

    # installing again replaces its own bundle (a changed --python is recorded)
    r = cli(env, "ofx", "install", "--dir", str(target), "--python", "/opt/py/bin/python3")
    assert r.returncode == 0, r.stderr
    assert json.loads((bundle / "Contents" / "Resources" / rofx.WORKER_FILE).read_text())["python"] == \
        "/opt/py/bin/python3"
    assert sorted(p.name for p in target.iterdir()) == ["Rerender.ofx.bundle"]  # no staging left behind


def test_default_folder_is_the_first_writable_of_ofx_plugin_path(env, built, tmp_path):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("x")
    first_writable = tmp_path / "second"
    env = dict(env, OFX_PLUGIN_PATH=os.pathsep.join([str(not_a_folder / "sub"), str(first_writable)]))
    r = cli(env, "--progress", "json", "ofx", "install")
    assert r.returncode == 0, r.stderr
    done = [json.loads(line) for line in r.stdout.splitlines() if '"done"' in line]
    assert done[-1]["output"] == str(first_writable / "Rerender.ofx.bundle")
    assert (first_writable / "Rerender.ofx.bundle" / BINARY).is_file()


def test_foreign_bundles_are_left_alone(env, built, tmp_path):
    target = tmp_path / "plugins"
    foreign = target / "Rerender.ofx.bundle" / BINARY
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"someone else's plugin")
    r = cli(env, "ofx", "install", "--dir", str(target))
    assert r.returncode == 2 and "did not install" in r.stderr
    r = cli(env, "ofx", "uninstall", "--dir", str(target))
    assert r.returncode == 2 and "not installed by rerender" in r.stderr
    assert foreign.read_bytes() == b"someone else's plugin"
    # uninstall without --dir removes only what rerender installed
    ours = tmp_path / "ours"
    assert cli(env, "ofx", "install", "--dir", str(ours)).returncode == 0
    r = cli(env, "ofx", "uninstall")
    assert r.returncode == 0, r.stderr
    assert not (ours / "Rerender.ofx.bundle").exists()
    assert foreign.read_bytes() == b"someone else's plugin"


def test_info_reports_the_installed_bundle_and_its_worker(env, built, tmp_path):
    target = tmp_path / "elsewhere"  # not a default folder: found through the install record
    assert cli(env, "ofx", "install", "--dir", str(target)).returncode == 0
    r = cli(env, "--progress", "json", "info")
    assert r.returncode == 0, r.stderr
    info = next(json.loads(line) for line in r.stdout.splitlines() if '"info"' in line)
    ofx = info["ofx"]
    assert ofx["bundle"] == str(built)
    assert ofx["installed"] == [{"path": str((target / "Rerender.ofx.bundle").resolve()), "version": rofx.__version__,
                                 "python": str(Path(sys.executable).absolute()), "python_exists": True}]
    assert ofx["cache"] == str(tmp_path / "cache" / "rerender" / "ofx")
    text = cli(env, "info").stdout
    assert f"OpenFX plugin: installed at {(target / 'Rerender.ofx.bundle').resolve()}" in text
    assert cli(env, "ofx", "uninstall", "--dir", str(target)).returncode == 0
    r = cli(env, "--progress", "json", "info")
    assert next(json.loads(line) for line in r.stdout.splitlines() if '"info"' in line)["ofx"]["installed"] == []


def test_uninstall_of_an_empty_folder_is_an_error(env, tmp_path):
    r = cli(env, "ofx", "uninstall", "--dir", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "no bundle there" in r.stderr


def test_cache_command_reports_and_clears_the_plugin_cache(env, tmp_path):
    cache = tmp_path / "ofx-cache"
    env = dict(env, RERENDER_OFX_CACHE=str(cache))
    (cache / "jobs" / "abc").mkdir(parents=True)
    (cache / "jobs" / "abc" / "plate.exr").write_bytes(b"x" * 2_000_000)
    r = cli(env, "ofx", "cache")
    assert r.returncode == 0 and f"{cache}: 2.0 MB" in r.stderr
    r = cli(env, "ofx", "cache", "--clear")
    assert r.returncode == 0 and not cache.exists()
