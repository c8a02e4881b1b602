"""Sampling nodes: KSampler, KSamplerAdvanced and the custom-sampling family (comfy-compat §9, §10)."""

from __future__ import annotations

from typing import Any, Callable

from diffusion.sampling.names import available_sampler_names, scheduler_names
from nodes import runtime

TOOLTIPS = {
    "model": "The model used for denoising the input latent.",
    "seed": "The random seed used for creating the noise.",
    "steps": "The number of steps used in the denoising process.",
    "cfg": "The Classifier-Free Guidance scale balances creativity and adherence to the prompt. Higher values result "
           "in images more closely matching the prompt however too high values will negatively impact quality.",
    "sampler_name": "The algorithm used when sampling, this can affect the quality, speed, and style of the "
                    "generated output.",
    "scheduler": "The scheduler controls how noise is gradually removed to form the image.",
    "positive": "The conditioning describing the attributes you want to include in the image.",
    "negative": "The conditioning describing the attributes you want to exclude from the image.",
    "latent_image": "The latent image to denoise.",
    "denoise": "The amount of denoising applied, lower values will maintain the structure of the initial image "
               "allowing for image to image sampling.",
}

SEED_OPTIONS = {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True}
CFG_OPTIONS = {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}
STEPS_OPTIONS = {"default": 20, "min": 1, "max": 10000}


def _taesd_decoder_path(latent_format: Any):
    """The family's TAESD decoder in the vae_approx folder (e.g. taesd_decoder.safetensors), or None."""
    name = getattr(latent_format, "taesd_decoder_name", None)
    if name is None:
        return None
    folders = runtime.folders()
    for file_name in folders.list_files("vae_approx"):
        if file_name.rsplit(".", 1)[0] == name and file_name.endswith(".safetensors"):
            return folders.full_path("vae_approx", file_name)
    return None


def progress_callback(model: Any, total_steps: int, x0_output: dict | None = None) -> Callable:
    """A sampler step callback that reports progress (and a preview when enabled) to the node context.

    `total_steps` is the nominal count; each report carries the sampler's own count (len(sigmas) - 1),
    as ComfyUI's progress bar does.
    """
    from diffusion.preview import make_previewer

    options = _server_options()
    method = options.get("preview_method", "none")
    taesd_path = _taesd_decoder_path(model.latent_format) if method == "taesd" else None
    previewer = make_previewer(model.latent_format, method, taesd_path)
    preview_size = int(options.get("preview_size", 512))

    def callback(step: int, x0, x, total: int) -> None:
        if x0_output is not None:
            x0_output["x0"] = x0
        preview = None
        if previewer is not None:
            preview = ("JPEG", previewer.decode(x0), preview_size)
        runtime.progress(step + 1, total, preview)

    return callback


def _server_options() -> Any:
    """The server's options, or none when a node runs outside the executor (from a script)."""
    try:
        return runtime.options()
    except runtime.NoNodeContext:
        return {}


def _console_bar_disabled() -> bool:
    return not _server_options().get("console_progress_bar", True)


def common_ksampler(model, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str, positive, negative,
                    latent: dict, denoise: float = 1.0, disable_noise: bool = False, start_step: int | None = None,
                    last_step: int | None = None, force_full_denoise: bool = False) -> tuple:
    """Noise from the seed (or zeros), then diffusion.sampling.pipeline.sample; returns a LATENT."""
    from diffusion.sampling import noise as noise_module, pipeline

    latent_image = pipeline.fix_empty_latent_channels(model, latent["samples"])
    if disable_noise:
        noise = noise_module.DisabledNoise().generate_noise({"samples": latent_image})
    else:
        noise = noise_module.prepare_noise(latent_image, seed, latent.get("batch_index"))
    samples = pipeline.sample(
        model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
        denoise=denoise, start_step=start_step, last_step=last_step, force_full_denoise=force_full_denoise,
        noise_mask=latent.get("noise_mask"), callback=progress_callback(model, steps),
        disable_pbar=_console_bar_disabled(), seed=seed,
    )
    out = latent.copy()
    out["samples"] = samples
    return (out,)


class KSampler:
    DESCRIPTION = "Uses the provided model, positive and negative conditioning to denoise the latent image."
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The denoised latent.",)
    FUNCTION = "sample"
    CATEGORY = "sampling"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "model": ("MODEL", {"tooltip": TOOLTIPS["model"]}),
            "seed": ("INT", {**SEED_OPTIONS, "tooltip": TOOLTIPS["seed"]}),
            "steps": ("INT", {**STEPS_OPTIONS, "tooltip": TOOLTIPS["steps"]}),
            "cfg": ("FLOAT", {**CFG_OPTIONS, "tooltip": TOOLTIPS["cfg"]}),
            "sampler_name": (available_sampler_names(), {"tooltip": TOOLTIPS["sampler_name"]}),
            "scheduler": (scheduler_names(), {"tooltip": TOOLTIPS["scheduler"]}),
            "positive": ("CONDITIONING", {"tooltip": TOOLTIPS["positive"]}),
            "negative": ("CONDITIONING", {"tooltip": TOOLTIPS["negative"]}),
            "latent_image": ("LATENT", {"tooltip": TOOLTIPS["latent_image"]}),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": TOOLTIPS["denoise"]}),
        }}

    def sample(self, model, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str, positive, negative,
               latent_image: dict, denoise: float = 1.0) -> tuple:
        return common_ksampler(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
                               denoise=denoise)


class KSamplerAdvanced:
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    CATEGORY = "sampling"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "model": ("MODEL",),
            "add_noise": (["enable", "disable"],),
            "noise_seed": ("INT", dict(SEED_OPTIONS)),
            "steps": ("INT", dict(STEPS_OPTIONS)),
            "cfg": ("FLOAT", dict(CFG_OPTIONS)),
            "sampler_name": (available_sampler_names(),),
            "scheduler": (scheduler_names(),),
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "latent_image": ("LATENT",),
            "start_at_step": ("INT", {"default": 0, "min": 0, "max": 10000}),
            "end_at_step": ("INT", {"default": 10000, "min": 0, "max": 10000}),
            "return_with_leftover_noise": (["disable", "enable"],),
        }}

    def sample(self, model, add_noise: str, noise_seed: int, steps: int, cfg: float, sampler_name: str,
               scheduler: str, positive, negative, latent_image: dict, start_at_step: int, end_at_step: int,
               return_with_leftover_noise: str, denoise: float = 1.0) -> tuple:
        return common_ksampler(model, noise_seed, steps, cfg, sampler_name, scheduler, positive, negative,
                               latent_image, denoise=denoise, disable_noise=add_noise == "disable",
                               start_step=start_at_step, last_step=end_at_step,
                               force_full_denoise=return_with_leftover_noise == "disable")


class KSamplerSelect:
    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"
    CATEGORY = "sampling/custom_sampling/samplers"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"sampler_name": (available_sampler_names(),)}}

    def get_sampler(self, sampler_name: str) -> tuple:
        from diffusion.sampling.registry import get_sampler

        return (get_sampler(sampler_name),)


class BasicScheduler:
    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = "sampling/custom_sampling/schedulers"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "model": ("MODEL",),
            "scheduler": (scheduler_names(),),
            "steps": ("INT", dict(STEPS_OPTIONS)),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
        }}

    def get_sigmas(self, model, scheduler: str, steps: int, denoise: float) -> tuple:
        import torch

        from diffusion.sampling.schedules import calculate_sigmas

        total_steps = steps
        if denoise < 1.0:
            if denoise <= 0.0:
                return (torch.FloatTensor([]),)
            total_steps = int(steps / denoise)
        sigmas = calculate_sigmas(model.model_sampling, scheduler, total_steps).cpu()
        return (sigmas[-(steps + 1):],)


class KarrasScheduler:
    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = "sampling/custom_sampling/schedulers"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "steps": ("INT", dict(STEPS_OPTIONS)),
            "sigma_max": ("FLOAT", {"default": 14.614642, "min": 0.0, "max": 5000.0, "step": 0.01, "round": False}),
            "sigma_min": ("FLOAT", {"default": 0.0291675, "min": 0.0, "max": 5000.0, "step": 0.01, "round": False}),
            "rho": ("FLOAT", {"default": 7.0, "min": 0.0, "max": 100.0, "step": 0.01, "round": False}),
        }}

    def get_sigmas(self, steps: int, sigma_max: float, sigma_min: float, rho: float) -> tuple:
        from diffusion.sampling.schedules import get_sigmas_karras

        return (get_sigmas_karras(n=steps, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho),)


class SplitSigmas:
    RETURN_TYPES = ("SIGMAS", "SIGMAS")
    RETURN_NAMES = ("high_sigmas", "low_sigmas")
    FUNCTION = "get_sigmas"
    CATEGORY = "sampling/custom_sampling/sigmas"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"sigmas": ("SIGMAS",), "step": ("INT", {"default": 0, "min": 0, "max": 10000})}}

    def get_sigmas(self, sigmas, step: int) -> tuple:
        return (sigmas[: step + 1], sigmas[step:])


class RandomNoise:
    RETURN_TYPES = ("NOISE",)
    FUNCTION = "get_noise"
    CATEGORY = "sampling/custom_sampling/noise"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"noise_seed": ("INT", dict(SEED_OPTIONS))}}

    def get_noise(self, noise_seed: int) -> tuple:
        from diffusion.sampling.noise import RandomNoise as Noise

        return (Noise(noise_seed),)


class DisableNoise:
    RETURN_TYPES = ("NOISE",)
    FUNCTION = "get_noise"
    CATEGORY = "sampling/custom_sampling/noise"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {}}

    def get_noise(self) -> tuple:
        from diffusion.sampling.noise import DisabledNoise

        return (DisabledNoise(),)


class CFGGuider:
    RETURN_TYPES = ("GUIDER",)
    FUNCTION = "get_guider"
    CATEGORY = "sampling/custom_sampling/guiders"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "model": ("MODEL",),
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "cfg": ("FLOAT", dict(CFG_OPTIONS)),
        }}

    def get_guider(self, model, positive, negative, cfg: float) -> tuple:
        from diffusion.sampling.guidance import CFGGuider as Guider

        return (Guider(model, positive, negative, cfg),)


class BasicGuider:
    RETURN_TYPES = ("GUIDER",)
    FUNCTION = "get_guider"
    CATEGORY = "sampling/custom_sampling/guiders"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"model": ("MODEL",), "conditioning": ("CONDITIONING",)}}

    def get_guider(self, model, conditioning) -> tuple:
        from diffusion.sampling.guidance import BasicGuider as Guider

        return (Guider(model, conditioning),)


def _custom_sample(guider, noise, sampler, sigmas, latent: dict, seed: int) -> tuple:
    """SamplerCustom(Advanced): sample, and also return the last x0 prediction as `denoised_output`."""
    from diffusion.sampling import pipeline

    model = guider.model
    latent = latent.copy()
    latent["samples"] = pipeline.fix_empty_latent_channels(model, latent["samples"])
    x0_output: dict = {}
    callback = progress_callback(model, sigmas.shape[-1] - 1, x0_output)
    samples = pipeline.sample_with_guider(
        guider, noise.generate_noise(latent), latent["samples"], sampler, sigmas,
        noise_mask=latent.get("noise_mask"), callback=callback, disable_pbar=_console_bar_disabled(),
        seed=seed,
    )
    out = latent.copy()
    out["samples"] = samples
    if "x0" in x0_output:
        denoised = latent.copy()
        denoised["samples"] = model.latent_format.process_out(x0_output["x0"].cpu())
    else:
        denoised = out
    return (out, denoised)


class SamplerCustom:
    RETURN_TYPES = ("LATENT", "LATENT")
    RETURN_NAMES = ("output", "denoised_output")
    FUNCTION = "sample"
    CATEGORY = "sampling/custom_sampling"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "model": ("MODEL",),
            "add_noise": ("BOOLEAN", {"default": True}),
            "noise_seed": ("INT", dict(SEED_OPTIONS)),
            "cfg": ("FLOAT", dict(CFG_OPTIONS)),
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "sampler": ("SAMPLER",),
            "sigmas": ("SIGMAS",),
            "latent_image": ("LATENT",),
        }}

    def sample(self, model, add_noise: bool, noise_seed: int, cfg: float, positive, negative, sampler, sigmas,
               latent_image: dict) -> tuple:
        from diffusion.sampling.guidance import CFGGuider as Guider
        from diffusion.sampling.noise import DisabledNoise, RandomNoise as Noise

        noise = Noise(noise_seed) if add_noise else DisabledNoise()
        # Without initial noise the ancestral/SDE samplers' own noise still follows the seed, as in ComfyUI.
        return _custom_sample(Guider(model, positive, negative, cfg), noise, sampler, sigmas, latent_image, noise_seed)


class SamplerCustomAdvanced:
    RETURN_TYPES = ("LATENT", "LATENT")
    RETURN_NAMES = ("output", "denoised_output")
    FUNCTION = "sample"
    CATEGORY = "sampling/custom_sampling"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "noise": ("NOISE",),
            "guider": ("GUIDER",),
            "sampler": ("SAMPLER",),
            "sigmas": ("SIGMAS",),
            "latent_image": ("LATENT",),
        }}

    def sample(self, noise, guider, sampler, sigmas, latent_image: dict) -> tuple:
        return _custom_sample(guider, noise, sampler, sigmas, latent_image, noise.seed)


NODE_CLASS_MAPPINGS = {
    "KSampler": KSampler,
    "KSamplerAdvanced": KSamplerAdvanced,
    "KSamplerSelect": KSamplerSelect,
    "BasicScheduler": BasicScheduler,
    "KarrasScheduler": KarrasScheduler,
    "SplitSigmas": SplitSigmas,
    "RandomNoise": RandomNoise,
    "DisableNoise": DisableNoise,
    "CFGGuider": CFGGuider,
    "BasicGuider": BasicGuider,
    "SamplerCustom": SamplerCustom,
    "SamplerCustomAdvanced": SamplerCustomAdvanced,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "KSampler": "KSampler",
    "KSamplerAdvanced": "KSampler (Advanced)",
    "KSamplerSelect": "KSamplerSelect",
    "BasicScheduler": "BasicScheduler",
    "KarrasScheduler": "KarrasScheduler",
    "SplitSigmas": "SplitSigmas",
    "RandomNoise": "RandomNoise",
    "DisableNoise": "DisableNoise",
    "CFGGuider": "CFGGuider",
    "BasicGuider": "BasicGuider",
    "SamplerCustom": "SamplerCustom",
    "SamplerCustomAdvanced": "SamplerCustomAdvanced",
}
