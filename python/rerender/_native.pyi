"""Types of rerender._native, the compiled core (csrc/bindings). Use the typed wrappers of the
package (rerender.synthesize, warp, occlusion, histogram_blend, min_error_combine, backends);
this module is their private implementation. tests/test_native_stub.py checks that this file names
exactly what the module exports, with the same parameters and defaults.

Arrays are numpy arrays (any layout: non-contiguous ones are copied once); images are H x W or
H x W x C, uint8 or float32. The CUDA entries (cuda_*, CudaArray, CudaError,
CudaOutOfMemoryError) exist only in a module built with the CUDA backend; they also take objects
with __cuda_array_interface__ (e.g. torch CUDA tensors) and then return CudaArray results.
Bad arguments raise ValueError naming them; allocations that cannot be had raise MemoryError.
"""
from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

_Image = npt.NDArray[np.uint8] | npt.NDArray[np.float32]
_FloatMap = npt.NDArray[np.float32]
_Mask = npt.NDArray[np.uint8]
_Nnf = npt.NDArray[np.int32]
_Guide = tuple[_Image, _Image, float]
_DeviceOrHost = Any  # a numpy array, or an object with __cuda_array_interface__

# ---- module ---------------------------------------------------------------------------------

def max_threads() -> int: ...
def compiled_backends() -> list[str]: ...
def simd() -> str: ...
def simd_paths() -> list[str]: ...
def set_simd(path: str) -> None: ...

# ---- CPU ops --------------------------------------------------------------------------------

class SynthesisParams:
    """Options of one synthesis call (immutable); the keywords, in this order, are its fields."""
    def __init__(
        self,
        *,
        style_weight: float = 1.0,
        patch_size: int = 5,
        pyramid_levels: int | None = None,
        search_vote_iters: int = 12,
        patchmatch_iters: int = 6,
        uniformity: float = 3500.0,
        search_radius: int = 0,
        stop_threshold: float = 5.0,
        seed: int = 0,
        threads: int = 0,
    ) -> None: ...
    @property
    def style_weight(self) -> float: ...
    @property
    def patch_size(self) -> int: ...
    @property
    def pyramid_levels(self) -> int | None: ...
    @property
    def search_vote_iters(self) -> int: ...
    @property
    def patchmatch_iters(self) -> int: ...
    @property
    def uniformity(self) -> float: ...
    @property
    def search_radius(self) -> int: ...
    @property
    def stop_threshold(self) -> float: ...
    @property
    def seed(self) -> int: ...
    @property
    def threads(self) -> int: ...
    def as_dict(self) -> dict[str, Any]: ...
    def replace(self, **changes: Any) -> SynthesisParams: ...

def synthesize(
    style: _Image,
    guides: Sequence[_Guide],
    params: SynthesisParams | None = None,
    init_nnf: _Nnf | None = None,
    target_mask: _Mask | None = None,
    init_active: _Mask | None = None,
) -> tuple[_Image, _Nnf, _FloatMap]: ...
@overload
def warp(image: _Image, flow: _FloatMap, mode: str = "bilinear", return_valid: Literal[False] = False,
         threads: int = 0) -> _Image: ...
@overload
def warp(image: _Image, flow: _FloatMap, mode: str = "bilinear", *, return_valid: Literal[True],
         threads: int = 0) -> tuple[_Image, _Mask]: ...
def occlusion(flow_ab: _FloatMap, flow_ba: _FloatMap, alpha1: float = 0.01, alpha2: float = 0.5,
              threads: int = 0) -> _Mask: ...
def histogram_blend(a: _Image, b: _Image, weight_a: float | _FloatMap, reference: _Image | None = None,
                    threads: int = 0) -> _Image: ...
def min_error_combine(a: _Image, b: _Image, error_a: _FloatMap, error_b: _FloatMap,
                      threads: int = 0) -> tuple[_Image, _Mask]: ...

# ---- CUDA (built with RERENDER_CUDA only) -----------------------------------------------------

class CudaError(RuntimeError): ...
class CudaOutOfMemoryError(MemoryError): ...

class CudaArray:
    """A result in CUDA device memory."""

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def device(self) -> int: ...
    def get(self) -> npt.NDArray[Any]: ...

def cuda_device_count() -> tuple[int, str]: ...
def cuda_device_name(device: int = 0) -> str: ...
def cuda_synthesize(
    style: _DeviceOrHost,
    guides: Sequence[tuple[_DeviceOrHost, _DeviceOrHost, float]],
    params: SynthesisParams | None = None,
    init_nnf: _DeviceOrHost | None = None,
    target_mask: _DeviceOrHost | None = None,
) -> tuple[Any, Any, Any]: ...
def cuda_warp(image: _DeviceOrHost, flow: _DeviceOrHost, mode: str = "bilinear", return_valid: bool = False,
              threads: int = 0) -> Any: ...
def cuda_occlusion(flow_ab: _DeviceOrHost, flow_ba: _DeviceOrHost, alpha1: float = 0.01, alpha2: float = 0.5,
                   threads: int = 0) -> Any: ...
def cuda_histogram_blend(a: _DeviceOrHost, b: _DeviceOrHost, weight_a: float | _DeviceOrHost,
                         reference: _DeviceOrHost | None = None, threads: int = 0) -> Any: ...
def cuda_min_error_combine(a: _DeviceOrHost, b: _DeviceOrHost, error_a: _DeviceOrHost, error_b: _DeviceOrHost,
                           threads: int = 0) -> tuple[Any, Any]: ...
