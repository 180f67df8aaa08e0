"""Build the Blender extension zip with the wheels that "Propagate My Key Frames" needs bundled, so
that it runs on Blender's own Python with nothing else installed.

Bundled: rerender's own portable wheel and the libraries the propagation imports beyond Blender's
numpy: OpenCV with its contrib modules (opencv-contrib-python-headless: `--flow deepflow` lives in
cv2.optflow) and PyAV. Full translation still runs in a Worker Python set in the add-on's
preferences: torch and diffusers are far too large to bundle.

    python scripts/build_blender_extension.py --out dist/blender [--wheel dist/rerender-*.whl ...]
        [--blender /path/to/blender | --blender-python PY]

One zip per platform that a rerender wheel is given (or built) for. rerender's wheel holds native
code, so a machine builds it for its own platform only: without ``--wheel``, a Linux x86-64 machine
builds the portable manylinux wheel with scripts/build_wheel.sh (auditwheel vendors the OpenMP
runtime; a raw ``linux_x86_64`` wheel from ``pip wheel`` links this machine's libgomp and is
refused). For Windows and macOS, build rerender's wheel on that system (cibuildwheel, configured in
pyproject.toml) and pass every platform's wheel with ``--wheel``: the other wheels are pure
downloads (``pip download --only-binary`` for each platform, unmodified, as Blender requires), so
one machine then packs the zips of all of them. The zip is built by Blender's own extension tool
with ``--split-platforms``: the ``blender`` binary when given, else the tool inside the ``bpy``
module of ``--blender-python`` (default: ``.venv-blender/bin/python``). Prints the platforms, the
zips and their sizes.
"""
from __future__ import annotations

import argparse
import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = "3.11"  # Blender 4.2 to 5.0
# Blender platform -> the wheel platform tags pip downloads for it
PLATFORMS = {
    "linux-x64": ["manylinux_2_28_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_11_0_arm64"],
    "macos-x64": ["macosx_10_15_x86_64", "macosx_11_0_x86_64"],
}
# what `rerender propagate` imports beyond the standard library, rerender and Blender's numpy; OpenCV's
# contrib build (the one rerender depends on) holds DeepFlow (cv2.optflow) for --flow deepflow
BUNDLED = ("opencv-contrib-python-headless", "av")


def run(cmd: list[str], **kw) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def host_platform() -> str | None:
    """This machine's Blender platform name (None: one Blender has no build for)."""
    machine = platform.machine().lower()
    cpu = "arm64" if machine in ("arm64", "aarch64") else "x64" if machine in ("x86_64", "amd64") else machine
    system = {"linux": "linux", "win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform)
    name = f"{system}-{cpu}"
    return name if name in PLATFORMS else None


def build_wheel(dest: Path) -> Path:
    """rerender's portable wheel for this machine, by scripts/build_wheel.sh (Linux x86-64 only)."""
    if host_platform() != "linux-x64":
        raise SystemExit(f"this machine ({sys.platform} {platform.machine()}) cannot build rerender's portable "
                         "wheel here: build it on its platform with cibuildwheel (see pyproject.toml) and pass it "
                         "with --wheel")
    env = dict(os.environ, PYTHON=sys.executable)
    out = subprocess.run(["bash", str(ROOT / "scripts" / "build_wheel.sh"), str(dest)], check=True, env=env,
                         stdout=subprocess.PIPE, text=True).stdout
    print(out, end="", flush=True)
    return Path(out.strip().splitlines()[-1])


def check_portable(wheel: Path) -> None:
    """Refuse a Linux wheel that auditwheel has not repaired: it links this machine's libraries."""
    tag = wheel.name[:-4].split("-")[-1]
    if tag.startswith("linux_"):
        raise SystemExit(f"{wheel}: a raw Linux wheel ({tag}) links this machine's OpenMP runtime and would not "
                         "load in another Blender; bundle the repaired one from scripts/build_wheel.sh "
                         "(manylinux_*)")


def wheel_platform(wheel: Path) -> str:
    """The Blender platform a binary wheel is for (from its platform tag)."""
    tag = wheel.name[:-4].split("-")[-1]
    for name, (os_part, cpu) in {"linux-x64": ("linux", "x86_64"), "windows-x64": ("win", "amd64"),
                                 "macos-arm64": ("macosx", "arm64"), "macos-x64": ("macosx", "x86_64")}.items():
        if os_part in tag and cpu in tag:
            return name
    raise SystemExit(f"{wheel.name}: cannot tell which Blender platform it is for")


def download(platform: str, dest: Path) -> list[Path]:
    got: list[Path] = []
    for package in BUNDLED:
        for tag in PLATFORMS[platform]:
            before = set(dest.glob("*.whl"))
            try:
                run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                     "--python-version", PYTHON, "--platform", tag, "-d", str(dest), package])
            except subprocess.CalledProcessError:
                continue
            new = sorted(set(dest.glob("*.whl")) - before)
            got += new or [w for w in dest.glob(f"{package.replace('-', '_')}-*.whl")]
            break
        else:
            raise SystemExit(f"no {package} wheel for {platform} ({', '.join(PLATFORMS[platform])})")
    return got


def write_manifest(stage: Path, wheels: list[Path], platforms: list[str]) -> None:
    manifest = stage / "blender_manifest.toml"
    text = manifest.read_text(encoding="utf-8")
    text = re.sub(r"(?ms)^wheels\s*=\s*\[.*?\]\n?", "", text)
    text = re.sub(r"(?m)^platforms\s*=.*\n?", "", text)
    lines = ",\n".join(f'  "./wheels/{w.name}"' for w in wheels)
    block = f"platforms = [{', '.join(repr(p).replace(chr(39), chr(34)) for p in platforms)}]\nwheels = [\n{lines},\n]\n"
    # top-level keys must come before the first [table]
    first_table = re.search(r"(?m)^\[", text)
    at = first_table.start() if first_table else len(text)
    manifest.write_text(text[:at].rstrip() + "\n\n" + block + "\n" + text[at:], encoding="utf-8")


def extension_tool(blender: str | None, blender_python: str) -> list[str]:
    if blender:
        return [blender, "--factory-startup", "--command", "extension"]
    tools = glob.glob(str(Path(blender_python).absolute().parents[1] / "lib" / "python3*" / "site-packages" / "bpy" /
                          "*" / "scripts" / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"))
    if not tools:
        raise SystemExit(f"no Blender extension tool: give --blender, or --blender-python with the bpy module "
                         f"({blender_python})")
    return [blender_python, tools[0]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "dist" / "blender", help="where the zips go")
    ap.add_argument("--wheel", type=Path, action="append", default=[],
                    help="rerender wheel(s), one per platform, repaired (manylinux) on Linux (default: build "
                         "this machine's with scripts/build_wheel.sh)")
    ap.add_argument("--blender", default=None, help="a Blender binary (its extension tool builds the zip)")
    ap.add_argument("--blender-python", default=str(ROOT / ".venv-blender" / "bin" / "python"),
                    help="a Python with the bpy module, whose extension tool builds the zip")
    args = ap.parse_args(argv)
    for w in args.wheel:
        check_portable(w)
    tool = extension_tool(args.blender, args.blender_python)  # before any build or download
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rerender-ext-") as tmp:
        tmp = Path(tmp)
        stage = tmp / "rerender"
        shutil.copytree(ROOT / "blender_addon", stage, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        wheels_dir = stage / "wheels"
        wheels_dir.mkdir()
        own = args.wheel or [build_wheel(tmp / "built")]
        platforms = sorted({wheel_platform(w) for w in own})
        others = sorted(set(PLATFORMS) - set(platforms))
        print(f"zips for: {', '.join(platforms)} (one per rerender wheel); this machine builds rerender's wheel for "
              f"{host_platform() or 'no Blender platform'} only"
              + (f"; for {', '.join(others)} pass that platform's wheel (cibuildwheel) with --wheel" if others else ""),
              flush=True)
        wheels = []
        for w in own:
            shutil.copy2(w, wheels_dir / w.name)
            wheels.append(wheels_dir / w.name)
        for name in platforms:
            wheels += download(name, wheels_dir)
        write_manifest(stage, wheels, platforms)
        run(tool + ["validate", str(stage)])
        run(tool + ["build", "--source-dir", str(stage), "--output-dir", str(args.out), "--split-platforms"])
    for z in sorted(args.out.glob("*.zip")):
        print(f"{z}  {z.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
