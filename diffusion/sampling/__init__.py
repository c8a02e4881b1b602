"""Sampling: noise schedules, samplers, classifier-free guidance and the KSampler pipeline.

Modules: `names` (torch-free combo lists), `model_sampling` (sigma <-> timestep, eps/v),
`schedules`, `samplers` / `samplers_extra` / `dpm_solver` (the sampler functions),
`registry` (the SAMPLER value), `noise`, `guidance` (CFG, GUIDER values), `pipeline`.
Import the submodules directly; this package imports nothing so that `names` stays torch-free.
"""
