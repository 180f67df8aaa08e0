"""Which native backend runs an operation: the CPU core (always compiled) or CUDA (when compiled
in and a device is usable).

``backend="auto"`` (the default of every native op) picks CUDA when a device is usable or when an
input already lives on the GPU, the CPU otherwise; ``"cpu"`` and ``"cuda"`` force one. Inputs on
the GPU are objects with ``__cuda_array_interface__`` (torch CUDA tensors, CuPy arrays); results
of such calls stay on the GPU (a torch tensor when the inputs were torch tensors).

The environment variable ``RERENDER_BACKEND=cpu|cuda`` changes what ``"auto"`` picks for host
inputs (e.g. to rule the GPU out while debugging).
"""
from __future__ import annotations

import functools
import os
from typing import Any

from . import _native

BACKENDS = ("auto", "cpu", "cuda")


_DLPACK_CUDA = 2  # DLDeviceType kDLCUDA


def _is_dlpack_cuda(obj: Any) -> bool:
    if not hasattr(obj, "__dlpack_device__"):
        return False
    try:
        return int(obj.__dlpack_device__()[0]) == _DLPACK_CUDA
    except Exception:
        return False


def is_device_array(obj: Any) -> bool:
    """True for GPU arrays: ``__cuda_array_interface__`` objects, or DLPack CUDA tensors."""
    return hasattr(obj, "__cuda_array_interface__") or _is_dlpack_cuda(obj)


def _as_cuda_interface(obj: Any) -> Any:
    """A DLPack-only CUDA array as a zero-copy torch view (torch exposes __cuda_array_interface__)."""
    if obj is None or hasattr(obj, "__cuda_array_interface__") or not _is_dlpack_cuda(obj):
        return obj
    try:
        import torch
    except ImportError:
        raise ValueError(f"a DLPack GPU array of type {type(obj).__name__} needs torch to be read; "
                         "pass a torch/CuPy array instead") from None
    return torch.from_dlpack(obj)


@functools.lru_cache(maxsize=1)
def _cuda_probe() -> tuple[int, str | None]:
    """(usable device count, reason when none). Probed once; never raises."""
    if "cuda" not in _native.compiled_backends():
        return 0, "the module was built without the CUDA backend"
    try:
        count, error = _native.cuda_device_count()
    except Exception as e:  # a broken driver must not break the CPU path
        return 0, f"CUDA probe failed: {e}"
    if count:
        return int(count), None
    if not _nvidia_driver_present():  # the runtime then says "driver version is insufficient": misleading
        return 0, "no CUDA device (no NVIDIA driver found)"
    if "no CUDA-capable device" in (error or ""):
        return 0, "no CUDA device"
    return 0, error or None


def _nvidia_driver_present() -> bool:
    """Whether the NVIDIA driver library (libcuda / nvcuda) can be loaded on this machine."""
    import ctypes
    import sys

    try:
        ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")
    except OSError:
        return False
    return True


def backends() -> dict[str, Any]:
    """What this installation can run.

    Returns a dict with ``compiled`` (list of backends built into ``rerender._native``: ``"cpu"``
    and possibly ``"cuda"``), ``cuda_devices`` (number of usable CUDA devices, 0 without a driver
    or device), ``cuda_usable`` (bool), ``cuda_reason`` (why CUDA is not usable, or None),
    ``threads`` (OpenMP threads a CPU call uses by default), ``simd`` (the SIMD path CPU calls use:
    ``"avx512"``, ``"avx2"``, ``"sse2"`` (x86-64), ``"neon"`` (AArch64) or ``"scalar"`` (the
    baseline elsewhere); picked at import from this CPU, or forced by the environment variable
    ``RERENDER_SIMD``, where ``baseline`` names the first path; every path gives the same bytes) and
    ``simd_paths`` (the paths this CPU supports).
    """
    count, reason = _cuda_probe()
    return {
        "compiled": list(_native.compiled_backends()),
        "cuda_devices": count,
        "cuda_usable": count > 0,
        "cuda_reason": reason,
        "threads": int(_native.max_threads()),
        "simd": _native.simd(),
        "simd_paths": list(_native.simd_paths()),
    }


def env_backend() -> str:
    """What ``RERENDER_BACKEND`` asks ``"auto"`` to pick (``"auto"`` when unset); ValueError naming
    the variable for anything else."""
    env = os.environ.get("RERENDER_BACKEND", "auto").strip().lower() or "auto"
    if env not in BACKENDS:
        raise ValueError(f"RERENDER_BACKEND: expected 'cpu', 'cuda' or 'auto', got {env!r}")
    return env


def resolve_backend(backend: str = "auto", **arrays: Any) -> str:
    """The backend (``"cpu"`` or ``"cuda"``) that runs a call with these named inputs.

    ``arrays`` are the call's array arguments by name (None entries are ignored), used to detect
    GPU inputs. Raises ValueError for an unknown backend, for ``"cuda"`` without a usable device,
    and for GPU inputs with ``backend="cpu"`` (the CPU core reads host memory only).
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    on_device = [name for name, a in arrays.items() if a is not None and is_device_array(a)]
    if backend == "auto" and not on_device:
        backend = env_backend()
    count, reason = _cuda_probe()
    if backend == "cpu":
        if on_device:
            raise ValueError(f"{on_device[0]}: is a GPU array but backend='cpu' was requested "
                             "(copy it to the host first, or use backend='cuda')")
        return "cpu"
    if backend == "cuda" or on_device:
        if count == 0:
            what = f"{on_device[0]}: is a GPU array" if on_device and backend == "auto" else "backend: 'cuda' was requested"
            raise ValueError(f"{what} but CUDA is not usable ({reason})")
        return "cuda"
    return "cuda" if count > 0 else "cpu"


def _to_torch_if_needed(result: Any, inputs: dict[str, Any]) -> Any:
    """Wrap device results as torch tensors when a GPU input was a torch tensor or DLPack array
    (zero-copy; the tensor keeps the result's buffer alive)."""
    if not any(is_device_array(a) and (type(a).__module__.split(".")[0] == "torch" or
                                       not hasattr(a, "__cuda_array_interface__"))
               for a in inputs.values() if a is not None):
        return result
    import torch

    def convert(r: Any) -> Any:
        if is_device_array(r):
            device = torch.device("cuda", int(getattr(r, "device", 0)))
            return torch.as_tensor(r, device=device)
        return r

    if isinstance(result, tuple):
        return tuple(convert(r) for r in result)
    return convert(result)


def call_native(op: str, which: str, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    """Run native op ``op`` on backend ``which`` (from resolve_backend).

    ``inputs`` are the array arguments in call order, followed by ``args``/``kwargs``. The CUDA
    variant of an op is ``_native.cuda_<op>`` with the same arguments.
    """
    if which == "cuda":
        arrays = [_as_cuda_interface(a) for a in inputs.values()]
        result = getattr(_native, f"cuda_{op}")(*arrays, *args, **kwargs)
        return _to_torch_if_needed(result, inputs)
    return getattr(_native, op)(*inputs.values(), *args, **kwargs)
