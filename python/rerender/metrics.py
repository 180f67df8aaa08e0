"""Temporal consistency of a processed video (warping error, Lai et al. 2018).

For every consecutive pair (i, i+1) of the *input* we compute the optical flow both ways and the
forward-backward occlusion mask M_i on frame i's grid. The output frame i+1 is warped back to i
with the input's flow, and the warping error of the pair is

    E_i = sum_x (1 - M_i(x)) * mean_c (O_i(x, c) - warp(O_{i+1}, F_{i->i+1})(x, c))^2
          / sum_x (1 - M_i(x))

with intensities in [0, 1] (so E is a mean squared error; ``x 1000`` gives the numbers papers
usually print). A temporally stable output follows the input's motion and scores near the
input's own warping error; flicker raises it. The mean over pairs is the clip's score.

The flow comes from the input, not the output, so a flickering output cannot hide its flicker
by distorting the flow. Frames are compared at the output's resolution (the input is resized to
it, e.g. when the output was made with ``--size``).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from .flow import FlowBackend, get_flow_backend
from .media import MediaError, probe, read_frames, resize_to, resolve_frames
from .overwrite_guard import Inputs

__all__ = ["ConsistencyReport", "temporal_consistency", "warping_error", "report_inputs"]


@dataclasses.dataclass
class ConsistencyReport:
    """Result of :func:`temporal_consistency`.

    ``per_pair[k]`` is the warping error between output frames ``first_frame + k`` and
    ``first_frame + k + 1``; ``occluded[k]`` the fraction of pixels excluded as occluded.
    """

    input: str
    output: str
    flow: str
    first_frame: int
    frame_count: int
    width: int
    height: int
    per_pair: list[float]
    occluded: list[float]

    @property
    def mean(self) -> float:
        """Mean warping error over all pairs (NaN for a one-frame clip)."""
        return float(np.mean(self.per_pair)) if self.per_pair else float("nan")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["mean"] = self.mean if self.per_pair else None
        d["mean_x1000"] = self.mean * 1000 if self.per_pair else None
        d["metric"] = "warping_error_mse"
        return d

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self) -> str:
        """One human-readable line."""
        if not self.per_pair:
            return f"{self.output}: one frame, no temporal pairs"
        return (f"{self.output}: warping error {self.mean * 1000:.3f} e-3 (MSE, [0,1] intensities) over "
                f"{len(self.per_pair)} pairs, max {max(self.per_pair) * 1000:.3f} e-3, "
                f"{np.mean(self.occluded) * 100:.1f}% pixels occluded (flow: {self.flow})")


def warping_error(out_i: np.ndarray, out_next: np.ndarray, flow_fwd: np.ndarray,
                  flow_bwd: np.ndarray) -> tuple[float, float]:
    """Warping error of one pair and the occluded fraction.

    ``flow_fwd`` = flow_{i->i+1} and ``flow_bwd`` = flow_{i+1->i} of the input (at the output's
    size). Returns ``(E_i, occluded fraction)``; E_i is 0.0 when every pixel is occluded.
    """
    from .warping import occlusion, warp

    if out_i.shape != out_next.shape or out_i.shape[:2] != flow_fwd.shape[:2]:
        raise ValueError(f"warping_error: shapes differ: frames {out_i.shape}, {out_next.shape}, "
                         f"flow {flow_fwd.shape}")
    occ = occlusion(flow_fwd, flow_bwd)
    warped = warp(out_next, flow_fwd, mode="bilinear")
    a = out_i.astype(np.float32) / 255.0
    b = warped.astype(np.float32) / 255.0
    sq = ((a - b) ** 2).reshape(a.shape[0], a.shape[1], -1).mean(axis=2)
    valid = occ == 0
    n = int(valid.sum())
    err = float(sq[valid].sum() / n) if n else 0.0
    return err, 1.0 - n / valid.size


def temporal_consistency(input_path: str | os.PathLike, output_path: str | os.PathLike,
                         flow: str | FlowBackend = "dis", frames: slice | range | None = None) -> ConsistencyReport:
    """Warping error of ``output_path`` using the optical flow of ``input_path``.

    Both are videos or image sequences. ``frames`` selects input frames (absolute, zero-based).
    The output must have either as many frames as the selection (output frame k <-> input frame
    ``start + k``) or as many as the whole input (the same selection is applied to it).
    Frames are streamed: two of each are in memory at a time.
    """
    backend = get_flow_backend(flow)
    in_info, out_info = probe(input_path), probe(output_path)
    sel = frames if frames is not None else range(in_info.frame_count)
    in_sel = resolve_frames(sel, in_info.frame_count, str(in_info.path))
    if in_sel.step != 1:
        raise MediaError(f"{in_info.path}: temporal consistency needs consecutive frames, got step {in_sel.step}")
    n = len(in_sel)
    if out_info.frame_count == n:
        out_sel = range(out_info.frame_count)
    elif out_info.frame_count == in_info.frame_count:
        out_sel = in_sel
    else:
        hint = ("; if it was made from part of the input, select that part with --frames A:B "
                "(frames= in Python), e.g. the range given to `rerender propagate --frames`")
        raise MediaError(f"{out_info.path}: has {out_info.frame_count} frames, but the input "
                         f"{in_info.path} has {in_info.frame_count} ({n} selected){hint}")
    in_aspect = in_info.width / in_info.height
    out_aspect = out_info.width / out_info.height
    if abs(in_aspect - out_aspect) > 0.02 * in_aspect:
        raise MediaError(f"{out_info.path}: aspect ratio {out_info.width}x{out_info.height} does not "
                         f"match the input's {in_info.width}x{in_info.height}")
    hw = (out_info.height, out_info.width)

    per_pair: list[float] = []
    occluded: list[float] = []
    prev_in = prev_out = None
    for inp, out in zip(read_frames(input_path, in_sel), read_frames(output_path, out_sel), strict=True):
        inp = resize_to(inp, hw)
        if prev_in is not None:
            fwd = backend(prev_in, inp)
            bwd = backend(inp, prev_in)
            e, occ = warping_error(prev_out, out, fwd, bwd)
            per_pair.append(e)
            occluded.append(occ)
        prev_in, prev_out = inp, out
    return ConsistencyReport(input=str(Path(input_path)), output=str(Path(output_path)), flow=backend.name,
                             first_frame=in_sel.start, frame_count=n, width=hw[1], height=hw[0],
                             per_pair=per_pair, occluded=occluded)


def report_inputs(input_path: str | os.PathLike, output_path: str | os.PathLike) -> Inputs:
    """What a measurement reads (both clips' files and folders), for the overwrite guard of the
    files it writes."""
    inputs = Inputs()
    for what, path in (("the input", input_path), ("the measured output", output_path)):
        info = probe(path)
        inputs.add_files(what, list(info.files) if info.is_sequence else [path])
        if Path(path).is_dir():
            inputs.add_folder(what, path)
    return inputs
