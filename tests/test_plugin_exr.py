"""The OpenFX plugin's own EXR reader/writer (csrc/ofx/exr.cpp) against the OpenEXR package, an
independent implementation: files the plugin writes read back exactly with OpenEXR, and the files
rerender writes (ZIP-compressed float and half, media/images.py) read back exactly in the plugin."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

OpenEXR = pytest.importorskip("OpenEXR")

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "csrc" / "ofx" / "exr.cpp", ROOT / "csrc" / "ofx" / "tools" / "exr_tool.cpp"]


@pytest.fixture(scope="module")
def tool(tmp_path_factory) -> Path:
    cxx = shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    exe = tmp_path_factory.mktemp("exr_tool") / "exr_tool"
    subprocess.run([cxx, "-std=c++17", "-O1", *map(str, SOURCES), "-lz", "-o", str(exe)], check=True)
    return exe


def plugin_write(tool: Path, path: Path, img: np.ndarray, names: str) -> None:
    h, w, _ = img.shape
    subprocess.run([str(tool), "write", str(path), str(w), str(h), names],
                   input=np.ascontiguousarray(img, np.float32).tobytes(), check=True)


def plugin_read(tool: Path, path: Path) -> tuple[np.ndarray, list[str]]:
    out = subprocess.run([str(tool), "read", str(path)], capture_output=True, check=True).stdout
    header, _, data = out.partition(b"\n")
    w, h, names = header.decode().split(" ")
    channels = names.split(",")
    return np.frombuffer(data, np.float32).reshape(int(h), int(w), len(channels)), channels


def test_plugin_files_read_exactly_by_openexr(tool, tmp_path):
    rng = np.random.default_rng(1)
    img = rng.normal(0.5, 2.0, (7, 13, 4)).astype(np.float32)
    img[0, 0] = [np.inf, -0.0, 1e-40, 65504.0]
    path = tmp_path / "plate.exr"
    plugin_write(tool, path, img, "R,G,B,A")
    with OpenEXR.File(str(path), separate_channels=True) as f:
        ch = {k: v.pixels for k, v in f.channels().items()}
        assert f.header()["compression"] == OpenEXR.NO_COMPRESSION
    assert sorted(ch) == ["A", "B", "G", "R"]
    for i, name in enumerate("RGBA"):
        assert ch[name].dtype == np.float32
        np.testing.assert_array_equal(ch[name], img[:, :, i])
    # and through rerender's own reader (premultiplied alpha, scene-linear RGB kept as float)
    from rerender.media.images import read_plate

    rgb, alpha = read_plate(path)
    np.testing.assert_array_equal(rgb, img[:, :, :3])
    np.testing.assert_array_equal(alpha, img[:, :, 3])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("alpha", [False, True])
def test_rerender_output_read_exactly_by_plugin(tool, tmp_path, dtype, alpha):
    from rerender.media.images import write_image

    rng = np.random.default_rng(2)
    h, w = 37, 21  # more than one 16-line ZIP block, and a short last one
    rgb = rng.uniform(-1, 4, (h, w, 3)).astype(dtype)
    rgb[:8] = 0.25  # compressible rows next to incompressible ones (stored raw by OpenEXR)
    a = rng.uniform(0, 1, (h, w)).astype(dtype) if alpha else None
    path = tmp_path / "out.exr"
    write_image(path, rgb, alpha=a)
    with OpenEXR.File(str(path)) as f:
        assert f.header()["compression"] == OpenEXR.ZIP_COMPRESSION
    pixels, channels = plugin_read(tool, path)
    assert channels == (["A", "B", "G", "R"] if alpha else ["B", "G", "R"])
    for i, name in enumerate("RGB"):
        np.testing.assert_array_equal(pixels[:, :, channels.index(name)], rgb[:, :, i].astype(np.float32))
    if alpha:
        np.testing.assert_array_equal(pixels[:, :, channels.index("A")], a.astype(np.float32))


def test_plugin_reader_refuses_other_files(tool, tmp_path):
    bad = tmp_path / "bad.exr"
    bad.write_bytes(b"not an exr")
    r = subprocess.run([str(tool), "read", str(bad)], capture_output=True)
    assert r.returncode == 1 and b"not an OpenEXR file" in r.stderr
    with OpenEXR.File({"type": OpenEXR.scanlineimage, "compression": OpenEXR.PIZ_COMPRESSION},
                      {"RGB": np.zeros((4, 4, 3), np.float32)}) as f:
        f.write(str(tmp_path / "piz.exr"))
    r = subprocess.run([str(tool), "read", str(tmp_path / "piz.exr")], capture_output=True)
    assert r.returncode == 1 and b"unsupported compression" in r.stderr
