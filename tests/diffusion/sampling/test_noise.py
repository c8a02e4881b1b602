"""Seed-compatible noise (comfy-compat §10.2): ComfyUI's draws, batch_index, the samplers' noise streams."""

from __future__ import annotations

import torch

from diffusion.sampling.noise import (BrownianTreeNoiseSampler, DisabledNoise, RandomNoise, default_noise_sampler,
                                      prepare_noise)


def test_noise_is_one_cpu_draw_after_manual_seed():
    latent = torch.zeros(3, 4, 8, 8)
    torch.manual_seed(1234)
    expected = torch.randn(3, 4, 8, 8)
    assert torch.equal(prepare_noise(latent, 1234), expected)


def test_large_seeds_up_to_2_64_are_accepted():
    latent = torch.zeros(1, 4, 2, 2)
    torch.manual_seed(0xFFFFFFFFFFFFFFFF)
    assert torch.equal(prepare_noise(latent, 0xFFFFFFFFFFFFFFFF), torch.randn(1, 4, 2, 2))


def test_batch_index_reproduces_single_items_of_a_batch():
    full = prepare_noise(torch.zeros(4, 4, 8, 8), 42)
    assert torch.equal(prepare_noise(torch.zeros(1, 4, 8, 8), 42, [2]), full[2:3])
    assert torch.equal(prepare_noise(torch.zeros(2, 4, 8, 8), 42, [3, 1]), full[[3, 1]])
    assert torch.equal(prepare_noise(torch.zeros(2, 4, 8, 8), 42, [1, 1]), full[[1, 1]])


def test_noise_does_not_touch_the_global_generator():
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    prepare_noise(torch.zeros(1, 4, 2, 2), 9)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_default_noise_sampler_restarts_the_seed_stream_like_comfyui():
    """ComfyUI seeds the samplers' generator with the same seed, so its first draw equals the initial noise."""
    x = torch.zeros(2, 4, 8, 8)
    sampler = default_noise_sampler(x, seed=7)
    first, second = sampler(1.0, 0.5), sampler(0.5, 0.1)
    initial = prepare_noise(x, 7)
    assert torch.equal(first, initial)
    assert not torch.equal(second, initial)


def test_brownian_tree_matches_k_diffusion_with_the_same_seed(kdiff):
    x = torch.zeros(2, 4, 8, 8)
    ours = BrownianTreeNoiseSampler(x, torch.tensor(0.03), torch.tensor(14.6), seed=11)
    reference = kdiff.BrownianTreeNoiseSampler(x, torch.tensor(0.03), torch.tensor(14.6), seed=11)
    for sigma, sigma_next in ((14.6, 7.0), (7.0, 1.0), (1.0, 0.03)):
        s, sn = torch.tensor(sigma), torch.tensor(sigma_next)
        torch.testing.assert_close(ours(s, sn), reference(s, sn))


def test_brownian_noise_is_unit_variance_and_consistent_across_step_counts():
    x = torch.zeros(1, 4, 64, 64)
    tree = BrownianTreeNoiseSampler(x, torch.tensor(0.1), torch.tensor(10.0), seed=3)
    whole = tree(torch.tensor(10.0), torch.tensor(1.0))
    assert abs(float(whole.std()) - 1.0) < 0.05
    # W(1)-W(10) = (W(1)-W(4)) + (W(4)-W(10)): increments are normalised by sqrt(|Δt|)
    halves = tree(torch.tensor(10.0), torch.tensor(4.0)) * 6**0.5 + tree(torch.tensor(4.0), torch.tensor(1.0)) * 3**0.5
    torch.testing.assert_close(whole * 9**0.5, halves, rtol=1e-4, atol=1e-4)


def test_noise_values_for_the_custom_sampling_nodes():
    latent = {"samples": torch.zeros(2, 4, 4, 4), "batch_index": [5, 6]}
    assert torch.equal(RandomNoise(3).generate_noise(latent), prepare_noise(latent["samples"], 3, [5, 6]))
    assert torch.equal(DisabledNoise().generate_noise(latent), torch.zeros(2, 4, 4, 4))
