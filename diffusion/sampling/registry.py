"""The SAMPLER value: a named sampler function plus its options, as KSamplerSelect hands it on."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from . import deis, dpm_solver, er_sde, sa_solver, samplers, samplers_cfg_pp, samplers_extra, samplers_res, samplers_seeds, uni_pc
from .names import DISCARD_PENULTIMATE_SIGMA_SAMPLERS, IMPLEMENTED_SAMPLERS

if TYPE_CHECKING:
    import torch

SamplerFunction = Callable[..., "torch.Tensor"]

SAMPLER_FUNCTIONS: dict[str, SamplerFunction] = {
    "euler": samplers.sample_euler,
    "euler_cfg_pp": samplers_cfg_pp.sample_euler_cfg_pp,
    "euler_ancestral": samplers.sample_euler_ancestral,
    "euler_ancestral_cfg_pp": samplers_cfg_pp.sample_euler_ancestral_cfg_pp,
    "heun": samplers.sample_heun,
    "heunpp2": samplers_extra.sample_heunpp2,
    "dpm_2": samplers.sample_dpm_2,
    "dpm_2_ancestral": samplers.sample_dpm_2_ancestral,
    "lms": samplers.sample_lms,
    "dpm_fast": dpm_solver.sample_dpm_fast,
    "dpm_adaptive": dpm_solver.sample_dpm_adaptive,
    "dpmpp_2s_ancestral": samplers.sample_dpmpp_2s_ancestral,
    "dpmpp_2s_ancestral_cfg_pp": samplers_cfg_pp.sample_dpmpp_2s_ancestral_cfg_pp,
    "dpmpp_sde": samplers.sample_dpmpp_sde,
    "dpmpp_sde_gpu": functools.partial(samplers.sample_dpmpp_sde, cpu_noise=False),
    "dpmpp_2m": samplers.sample_dpmpp_2m,
    "dpmpp_2m_cfg_pp": samplers_cfg_pp.sample_dpmpp_2m_cfg_pp,
    "dpmpp_2m_sde": samplers.sample_dpmpp_2m_sde,
    "dpmpp_2m_sde_gpu": functools.partial(samplers.sample_dpmpp_2m_sde, cpu_noise=False),
    "dpmpp_2m_sde_heun": functools.partial(samplers.sample_dpmpp_2m_sde, solver_type="heun"),
    "dpmpp_2m_sde_heun_gpu": functools.partial(samplers.sample_dpmpp_2m_sde, solver_type="heun", cpu_noise=False),
    "dpmpp_3m_sde": samplers.sample_dpmpp_3m_sde,
    "dpmpp_3m_sde_gpu": functools.partial(samplers.sample_dpmpp_3m_sde, cpu_noise=False),
    "ddpm": samplers_extra.sample_ddpm,
    "lcm": samplers_extra.sample_lcm,
    "ipndm": samplers_extra.sample_ipndm,
    "ipndm_v": samplers_extra.sample_ipndm_v,
    "deis": deis.sample_deis,
    "res_multistep": samplers_res.sample_res_multistep,
    "res_multistep_cfg_pp": samplers_res.sample_res_multistep_cfg_pp,
    "res_multistep_ancestral": samplers_res.sample_res_multistep_ancestral,
    "res_multistep_ancestral_cfg_pp": samplers_res.sample_res_multistep_ancestral_cfg_pp,
    "gradient_estimation": samplers_seeds.sample_gradient_estimation,
    "gradient_estimation_cfg_pp": samplers_seeds.sample_gradient_estimation_cfg_pp,
    "er_sde": er_sde.sample_er_sde,
    "seeds_2": samplers_seeds.sample_seeds_2,
    "seeds_3": samplers_seeds.sample_seeds_3,
    "sa_solver": sa_solver.sample_sa_solver,
    "sa_solver_pece": sa_solver.sample_sa_solver_pece,
    "ddim": samplers.sample_euler,  # DDIM is the Euler step of the probability-flow ODE in sigma
    "uni_pc": uni_pc.sample_uni_pc,
    "uni_pc_bh2": uni_pc.sample_uni_pc_bh2,
}

# ddim re-noises the inpainting reference with a fresh seed+1 draw, as ComfyUI does.
_RANDOM_INPAINT_NOISE = frozenset({"ddim"})
# Samplers whose defaults depend on the model's noise levels (SA-Solver's stochastic interval).
_NEEDS_MODEL_SAMPLING = frozenset({"sa_solver", "sa_solver_pece"})


@dataclass(frozen=True)
class Sampler:
    """A SAMPLER value: `function(denoiser, x, sigmas, extra_args=, callback=, disable=, **options)`."""

    name: str
    function: SamplerFunction
    options: dict = field(default_factory=dict)
    random_inpaint_noise: bool = False
    needs_model_sampling: bool = False

    def __call__(self, denoiser, x, sigmas, extra_args=None, callback=None, disable=None, model_sampling=None):
        options = dict(self.options)
        if self.needs_model_sampling and "model_sampling" not in options:
            options["model_sampling"] = model_sampling
        return self.function(denoiser, x, sigmas, extra_args=extra_args, callback=callback, disable=disable, **options)


def get_sampler(name: str, **options) -> Sampler:
    """The sampler called `name` (one of IMPLEMENTED_SAMPLERS); unknown names raise, never fall back."""
    function = SAMPLER_FUNCTIONS.get(name)
    if function is None or name not in IMPLEMENTED_SAMPLERS:
        raise ValueError(f"sampler {name!r} is not available in Kiln; choose one of {sorted(IMPLEMENTED_SAMPLERS)}")
    return Sampler(name, function, dict(options), random_inpaint_noise=name in _RANDOM_INPAINT_NOISE,
                   needs_model_sampling=name in _NEEDS_MODEL_SAMPLING)


def discards_penultimate_sigma(name: str) -> bool:
    return name in DISCARD_PENULTIMATE_SIGMA_SAMPLERS
