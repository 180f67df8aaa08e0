"""Schedulers of the key-frame sampler and where the constraints act on their trajectories.

``--scheduler`` picks one of diffusers' schedulers, built from the model's own scheduler config (its
noise schedule and prediction type: epsilon, or v for SD 2.x at 768). The sampler keeps the sample
in the scheduler's own space (VP for DDIM, DPM-Solver++, LCM and TCD; sigma space x0 + sigma eps for
the Euler ones) and sees each step as (x0, eps): the constraints edit x0, the scheduler steps from
the consistent state sqrt(a) x0' + sqrt(1 - a) eps (for DDIM this is exactly the paper's update
x_{t-1} = sqrt(a_prev) x0' + sqrt(1 - a_prev) eps, kept as the hand-written DDIM step).

Trajectory fractions: the paper's windows are step indices of a 20-step DDIM schedule (e.g. shape
fusion at steps 0-1 = the first 10%). Step k of any schedule sits at the fraction
    p_k = (t_first - t_k) / (t_first - t_end)
of the timesteps the run covers (t_end: the last timestep minus the schedule's last gap, i.e. where
the next step would start). For DDIM's uniform spacing p_k = k / n, the step fraction the windows
always used. A step is in a window (start, end) when start <= p_k < end; a window that holds no step
start on a few-step schedule takes the step whose span [p_k, p_k+1) contains its start, so every
constraint still acts once on a 1-8-step schedule (docs/method.md, "Schedulers").
"""
from __future__ import annotations

import copy
import dataclasses
import math
import typing

import torch

from .config import Sampler


@dataclasses.dataclass(frozen=True)
class SchedulerKind:
    name: str
    cls: str
    """diffusers class name."""
    sigma_space: bool
    """The sample is x0 + sigma eps (model input scaled by 1 / sqrt(sigma^2 + 1)), not sqrt(a) x0 + sqrt(1 - a) eps."""
    stochastic: bool
    """The step draws fresh noise (from the sampler's per-frame generator, the same for every frame)."""
    options: tuple = ()
    """Config overrides (key, value) on top of the model's scheduler config."""
    note: str = ""


SCHEDULERS: dict[str, SchedulerKind] = {
    "ddim": SchedulerKind("ddim", "DDIMScheduler", False, False, note="the paper's (eta 0); exact DDIM inversion"),
    "euler": SchedulerKind("euler", "EulerDiscreteScheduler", True, False),
    "euler-a": SchedulerKind("euler-a", "EulerAncestralDiscreteScheduler", True, True),
    "dpm++": SchedulerKind("dpm++", "DPMSolverMultistepScheduler", False, False,
                           options=(("algorithm_type", "dpmsolver++"), ("solver_order", 2)),
                           note="DPM-Solver++(2M)"),
    "lcm": SchedulerKind("lcm", "LCMScheduler", False, True, note="for LCM / LCM-LoRA models, 2-8 steps, guidance ~1-2"),
    "tcd": SchedulerKind("tcd", "TCDScheduler", False, True, note="for TCD-LoRA models, 2-8 steps"),
}
# the config's Sampler literal (and so the CLI's --sampler choices) names exactly these
assert tuple(SCHEDULERS) == typing.get_args(Sampler), "keyframes.config.Sampler and SCHEDULERS disagree"


def make(name: str, base_config) -> object:
    """A diffusers scheduler of kind ``name`` from the model's scheduler config."""
    import diffusers

    if name not in SCHEDULERS:
        raise ValueError(f"scheduler: {name!r} is not one of {', '.join(SCHEDULERS)}")
    kind = SCHEDULERS[name]
    return getattr(diffusers, kind.cls).from_config(base_config, **dict(kind.options))


def trajectory_positions(full: list[int], n_run: int) -> list[float]:
    """p_k of the last ``n_run`` timesteps of the schedule ``full`` (see the module docstring)."""
    run = full[len(full) - n_run:]
    gap = full[-2] - full[-1] if len(full) >= 2 else run[-1] + 1
    end = run[-1] - gap
    span = run[0] - end
    return [(run[0] - t) / span for t in run]


def window_steps(positions: list[float], window: tuple[float, float]) -> range:
    """Steps of the run (by trajectory position) inside ``window``; see the module docstring."""
    start, end = window
    n = len(positions)
    eps = 1e-9 / n  # the same tolerance as constraints.window_steps on uniform positions k / n
    inside = [k for k, p in enumerate(positions) if start - eps <= p < end - eps]
    if inside:
        return range(inside[0], inside[-1] + 1)
    if end <= start or start >= 1.0:
        return range(0)
    k = max(i for i, p in enumerate(positions) if p <= start + eps) if positions[0] <= start + eps else 0
    return range(k, k + 1)


class Trajectory:
    """The steps actually run (SDEdit skips the first ones), their noise levels and the scheduler state.

    Levels: ``alpha(k)`` is alpha-bar at the input of step k, ``alpha_next(k)`` at its output: the next
    timestep's (the end of the trajectory is clean, 1), except for DDIM, which steps to t - T / steps
    (and from the last step to ``final_alpha_cumprod``) as diffusers' DDIM and the paper do.
    """

    def __init__(self, name: str, base_config, steps: int, strength: float):
        sch = make(name, base_config)
        self.kind = SCHEDULERS[name]
        sch.set_timesteps(steps)
        full = [int(t) for t in sch.timesteps]
        self.steps = steps
        self.n_run = min(int(steps * strength + 1e-9), steps)  # 0.7 x 20 must give 14
        if self.n_run < 1:
            raise ValueError(f"strength: {strength} x {steps} steps runs no step; raise strength or steps")
        self.begin = len(full) - self.n_run
        self.timesteps = full[self.begin:]
        self._timestep_values = sch.timesteps[self.begin:]  # as the scheduler holds them (its step() wants these)
        self.positions = trajectory_positions(full, self.n_run)
        ac = sch.alphas_cumprod
        self.levels = [float(ac[t]) for t in self.timesteps]
        if self.kind.name == "ddim":
            gap = sch.config.num_train_timesteps // steps
            self.next_levels = [float(ac[t - gap]) if t - gap >= 0 else float(sch.final_alpha_cumprod)
                                for t in self.timesteps]
        else:
            self.next_levels = self.levels[1:] + [1.0]
        self._template = copy.deepcopy(sch)
        if hasattr(self._template, "set_begin_index"):
            self._template.set_begin_index(self.begin)

    # --- levels and spaces ------------------------------------------------------------------------
    def alpha(self, k: int) -> float:
        return self.levels[k]

    def alpha_next(self, k: int) -> float:
        return self.next_levels[k]

    def scale(self, k: int, after: bool = False) -> float:
        """sample = x_vp * scale at the input of step k (``after``: at its output): 1 in VP space,
        1 / sqrt(alpha) in sigma space."""
        if not self.kind.sigma_space:
            return 1.0
        return 1.0 / math.sqrt(self.next_levels[k] if after else self.levels[k])

    def split(self, out: torch.Tensor, x_vp: torch.Tensor, k: int, prediction: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Model output at step k -> (eps, x0), ``x_vp`` the model's input (VP space)."""
        a = self.levels[k]
        sa, sb = a ** 0.5, (1.0 - a) ** 0.5
        if prediction == "epsilon":
            return out, (x_vp - sb * out) / sa
        if prediction == "v_prediction":
            return sa * out + sb * x_vp, sa * x_vp - sb * out
        if prediction == "sample":
            return (x_vp - sa * out) / sb, out
        raise ValueError(f"scheduler prediction_type {prediction!r} is not supported")

    @staticmethod
    def compose(x0: torch.Tensor, eps: torch.Tensor, a: float, prediction: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_vp, model output) consistent with (x0, eps) at level ``a``."""
        sa, sb = a ** 0.5, (1.0 - a) ** 0.5
        x = sa * x0 + sb * eps
        if prediction == "epsilon":
            return x, eps
        if prediction == "v_prediction":
            return x, sa * eps - sb * x0
        return x, x0

    def noised(self, x0: torch.Tensor, z: torch.Tensor, k: int) -> torch.Tensor:
        """x0 noised with ``z`` to the level at the input of step k (VP space)."""
        a = self.levels[k]
        return a ** 0.5 * x0 + (1.0 - a) ** 0.5 * z

    # --- the scheduler's state over a pass ---------------------------------------------------------
    def fresh(self):
        """The scheduler at the first step run (its step index at the SDEdit start)."""
        return copy.deepcopy(self._template)

    def add_noise(self, latent: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """SDEdit start in the scheduler's sample space: E(I) noised to the first timestep run."""
        return self.fresh().add_noise(latent, z, torch.tensor([self.timesteps[0]]))

    def step(self, sch, out: torch.Tensor, k: int, sample: torch.Tensor, generator) -> torch.Tensor:
        """One step of the diffusers scheduler ``sch`` (the pass's state) from ``sample``."""
        kwargs = {"generator": generator} if self.kind.stochastic else {}
        if self.kind.name == "ddim":
            kwargs["eta"] = 0.0
        return sch.step(out, self._timestep_values[k], sample, return_dict=False, **kwargs)[0]

    def scale_model_input(self, sch, sample: torch.Tensor, k: int) -> torch.Tensor:
        return sch.scale_model_input(sample, self._timestep_values[k])


class Pass:
    """One sampling pass over a trajectory: the scheduler's state and the generator of its step noise.

    The generator is seeded with ``seed`` and first yields the start noise's draw (``shape``), so the
    step noise continues the stream diffusers' pipelines use. :meth:`save` / ``resume=`` carry both
    from one pass into another (the fused pass resumes the rough one at the pixel window).
    """

    def __init__(self, traj: Trajectory, seed: int, shape: tuple, resume: tuple | None = None):
        self.traj = traj
        self.ddim = traj.kind.name == "ddim"  # the paper's update, written out (no scheduler state)
        if resume is not None:
            self.sch, self.gen = copy.deepcopy(resume[0]), torch.Generator("cpu")
            self.gen.set_state(resume[1])
        else:
            self.sch, self.gen = traj.fresh(), torch.Generator("cpu").manual_seed(seed)
            if traj.kind.stochastic:
                torch.randn(shape, generator=self.gen)

    def save(self) -> tuple:
        return copy.deepcopy(self.sch), self.gen.get_state()

    def model_input(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The UNet's input at step k: the VP latent (sigma-space samples are scaled back)."""
        return x if self.ddim else self.traj.scale_model_input(self.sch, x, k)

    def step(self, k: int, out: torch.Tensor, x_in: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor,
             prediction: str, edited: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_next, direction) in VP terms: the step from the state consistent with (x0, eps) (``edited``:
        x0 was changed by a constraint), and the result's noise part x_next - sqrt(a_next) x0."""
        a_t, a_next = self.traj.alpha(k), self.traj.alpha_next(k)
        if self.ddim:  # x_{t-1} = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps
            direction = (1.0 - a_next) ** 0.5 * eps
            return a_next ** 0.5 * x0 + direction, direction
        if edited:
            x_in, out = self.traj.compose(x0, eps, a_t, prediction)
        sample = x_in * self.traj.scale(k)
        x = self.traj.step(self.sch, out, k, sample, self.gen) / self.traj.scale(k, after=True)
        return x, x - a_next ** 0.5 * x0

    def to_sample(self, x_vp: torch.Tensor, k: int) -> torch.Tensor:
        """Step k's VP result in the scheduler's sample space."""
        return x_vp if self.ddim else x_vp * self.traj.scale(k, after=True)
