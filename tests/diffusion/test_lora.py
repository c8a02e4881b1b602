"""LoRA files of every supported format patch a UNet/text encoder to W + strength·ΔW, and only the value that holds them.

ΔW is recomputed here from each format's published formula (LoRA: alpha/rank · up@down;
LoCon Tucker; LoHa: (w1a@w1b)⊙(w2a@w2b); LoKr: w1⊗w2), and a PEFT LoRA made by diffusers
is checked end to end against diffusers' own patched UNet.
"""

from __future__ import annotations

import pytest
import torch

from diffusion.lora import load_lora_for_models, parse_lora
from diffusion.lora.apply import add_patches
from diffusion.lora.keymap import unet_key_map
from diffusion.lora.patching import apply_weight_patches
from diffusion.lora.unet_keys import diffusers_to_ldm, ldm_to_diffusers
from diffusion.models.unet import UNetModel
from tests.diffusion.test_unet import SD1_TINY, diffusers_unet, to_ldm_unet_keys

# (ldm path, diffusers path) of layers of SD1_TINY: a linear, a 1×1 conv and a 3×3 conv.
TO_Q = ("input_blocks.1.1.transformer_blocks.0.attn1.to_q", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q")
PROJ_IN = ("input_blocks.1.1.proj_in", "down_blocks.0.attentions.0.proj_in")
CONV1 = ("input_blocks.3.0.in_layers.2", "down_blocks.1.resnets.0.conv1")


class FakeModel:
    """The parts of a MODEL value that LoRA loading uses: a UNet, patches and clone()."""

    def __init__(self, unet):
        self.unet = unet
        self.patches: dict = {}

    def clone(self):
        twin = FakeModel(self.unet)
        twin.patches = {k: list(v) for k, v in self.patches.items()}
        return twin


@pytest.fixture(scope="module")
def unet() -> UNetModel:
    torch.manual_seed(0)
    model = UNetModel(SD1_TINY).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    return model


def weight(unet, path: str) -> torch.Tensor:
    return dict(unet.named_parameters())[path + ".weight"]


def patched(unet, lora: dict, strength: float = 1.0) -> dict[str, torch.Tensor]:
    """The UNet's weights with the LoRA in place (a copy), then the originals put back."""
    model, _ = load_lora_for_models(FakeModel(unet), None, lora, strength, 0.0)
    apply_weight_patches(unet, model.patches)
    weights = {name: p.detach().clone() for name, p in unet.named_parameters()}
    apply_weight_patches(unet, {})
    return weights


def lora_pair(shape, rank: int, generator: torch.Generator):
    out_ch, in_ch = shape[0], shape[1]
    kernel = tuple(shape[2:])
    down = torch.randn((rank, in_ch) + kernel, generator=generator)
    up = torch.randn((out_ch, rank) + (1,) * len(kernel), generator=generator)
    return up, down


def lora_delta(up, down, alpha, shape):
    return (alpha / down.shape[0]) * (up.flatten(1) @ down.flatten(1)).reshape(shape)


@pytest.mark.parametrize("style", ["kohya-ldm", "kohya-diffusers", "peft", "diffusers-old", "peft-no-prefix",
                                   "peft-base-model"])
def test_lora_formats_patch_exactly_w_plus_strength_scale_up_down(unet, style):
    g = torch.Generator().manual_seed(1)
    layers = [TO_Q, PROJ_IN, CONV1]
    lora, expected = {}, {}
    for ldm, diff in layers:
        shape = weight(unet, ldm).shape
        up, down = lora_pair(shape, 4, g)
        alpha = 2.0
        if style == "kohya-ldm":
            base = "lora_unet_" + ldm.replace(".", "_")
            lora.update({base + ".lora_up.weight": up, base + ".lora_down.weight": down, base + ".alpha": torch.tensor(alpha)})
        elif style == "kohya-diffusers":
            base = "lora_unet_" + diff.replace(".", "_")
            lora.update({base + ".lora_up.weight": up, base + ".lora_down.weight": down, base + ".alpha": torch.tensor(alpha)})
        elif style.startswith("peft"):
            base = {"peft": "unet.", "peft-no-prefix": "", "peft-base-model": "base_model.model."}[style] + diff
            lora.update({base + ".lora_B.weight": up, base + ".lora_A.weight": down})
            alpha = 4.0  # no alpha stored: scale 1
        else:
            base = "unet." + diff
            lora.update({base + ".lora.up.weight": up, base + ".lora.down.weight": down})
            alpha = 4.0
        expected[ldm] = weight(unet, ldm) + 0.7 * lora_delta(up, down, alpha, shape)
    result = patched(unet, lora, 0.7)
    for ldm, want in expected.items():
        torch.testing.assert_close(result[ldm + ".weight"], want, rtol=0, atol=1e-5)
    untouched = "output_blocks.0.0.in_layers.2.weight"
    assert torch.equal(result[untouched], dict(unet.named_parameters())[untouched])


def test_diffusers_attention_processor_names_reach_to_out(unet):
    g = torch.Generator().manual_seed(2)
    ldm = "input_blocks.1.1.transformer_blocks.0.attn2.to_out.0"
    shape = weight(unet, ldm).shape
    up, down = lora_pair(shape, 2, g)
    base = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_out_lora"
    result = patched(unet, {base + ".up.weight": up, base + ".down.weight": down})
    torch.testing.assert_close(result[ldm + ".weight"], weight(unet, ldm) + lora_delta(up, down, 2.0, shape))


def test_locon_with_tucker_core(unet):
    g = torch.Generator().manual_seed(3)
    shape = weight(unet, CONV1[0]).shape  # [out, in, 3, 3]
    rank = 3
    down = torch.randn(rank, shape[1], 1, 1, generator=g)
    mid = torch.randn(rank, rank, 3, 3, generator=g)
    up = torch.randn(shape[0], rank, 1, 1, generator=g)
    base = "lora_unet_" + CONV1[0].replace(".", "_")
    lora = {base + ".lora_up.weight": up, base + ".lora_down.weight": down, base + ".lora_mid.weight": mid,
            base + ".alpha": torch.tensor(1.5)}
    # ΔW[o, i, k, l] = Σ_ab up[o, a] mid[a, b, k, l] down[b, i], written out as convolutions in sequence.
    delta = torch.zeros(shape)
    for o in range(shape[0]):
        for i in range(shape[1]):
            delta[o, i] = (up[o, :, 0, 0][:, None, None, None] * mid * down[:, i, 0, 0][None, :, None, None]).sum((0, 1))
    result = patched(unet, lora)
    torch.testing.assert_close(result[CONV1[0] + ".weight"], weight(unet, CONV1[0]) + 0.5 * delta, rtol=1e-4, atol=1e-4)


def test_loha_and_loha_tucker(unet):
    g = torch.Generator().manual_seed(4)
    shape = weight(unet, TO_Q[0]).shape
    rank = 2
    w = {n: torch.randn(*s, generator=g) for n, s in
         [("w1a", (shape[0], rank)), ("w1b", (rank, shape[1])), ("w2a", (shape[0], rank)), ("w2b", (rank, shape[1]))]}
    base = "lora_unet_" + TO_Q[0].replace(".", "_")
    lora = {base + ".hada_w1_a": w["w1a"], base + ".hada_w1_b": w["w1b"], base + ".hada_w2_a": w["w2a"],
            base + ".hada_w2_b": w["w2b"], base + ".alpha": torch.tensor(1.0)}
    expected = weight(unet, TO_Q[0]) + 0.5 * ((w["w1a"] @ w["w1b"]) * (w["w2a"] @ w["w2b"]))
    torch.testing.assert_close(patched(unet, lora)[TO_Q[0] + ".weight"], expected, rtol=1e-5, atol=1e-5)

    conv = weight(unet, CONV1[0]).shape
    t = {n: torch.randn(*s, generator=g) for n, s in [("t1", (rank, rank, 3, 3)), ("t2", (rank, rank, 3, 3)),
                                                      ("a1", (rank, conv[0])), ("b1", (rank, conv[1])),
                                                      ("a2", (rank, conv[0])), ("b2", (rank, conv[1]))]}
    base = "lora_unet_" + CONV1[0].replace(".", "_")
    lora = {base + ".hada_w1_a": t["a1"], base + ".hada_w1_b": t["b1"], base + ".hada_w2_a": t["a2"],
            base + ".hada_w2_b": t["b2"], base + ".hada_t1": t["t1"], base + ".hada_t2": t["t2"]}

    def rebuild(core, a, b):  # LyCORIS: W[p, r, k, l] = Σ_ij core[i, j, k, l] a[i, p] b[j, r]
        return (core[:, :, None, None] * a[:, None, :, None, None, None] * b[None, :, None, :, None, None]).sum((0, 1))

    expected = weight(unet, CONV1[0]) + rebuild(t["t1"], t["a1"], t["b1"]) * rebuild(t["t2"], t["a2"], t["b2"])
    torch.testing.assert_close(patched(unet, lora)[CONV1[0] + ".weight"], expected, rtol=1e-4, atol=1e-4)


def test_lokr_is_a_kronecker_product(unet):
    g = torch.Generator().manual_seed(5)
    shape = weight(unet, TO_Q[0]).shape  # 32 × 32
    w1 = torch.randn(4, 4, generator=g)
    w2a, w2b = torch.randn(8, 2, generator=g), torch.randn(2, 8, generator=g)
    base = "lora_unet_" + TO_Q[0].replace(".", "_")
    lora = {base + ".lokr_w1": w1, base + ".lokr_w2_a": w2a, base + ".lokr_w2_b": w2b, base + ".alpha": torch.tensor(1.0)}
    w2 = w2a @ w2b
    kron = torch.stack([torch.stack([w1[i, j] * w2 for j in range(4)], 1) for i in range(4)]).reshape(shape)
    torch.testing.assert_close(patched(unet, lora)[TO_Q[0] + ".weight"], weight(unet, TO_Q[0]) + 0.5 * kron)


def test_negative_strengths_and_stacked_loras_add_up(unet):
    g = torch.Generator().manual_seed(6)
    shape = weight(unet, TO_Q[0]).shape
    base = "lora_unet_" + TO_Q[0].replace(".", "_")
    (up1, down1), (up2, down2) = lora_pair(shape, 2, g), lora_pair(shape, 2, g)
    first = {base + ".lora_up.weight": up1, base + ".lora_down.weight": down1}
    second = {base + ".lora_up.weight": up2, base + ".lora_down.weight": down2}
    model, _ = load_lora_for_models(FakeModel(unet), None, first, -1.5, 0.0)
    model, _ = load_lora_for_models(model, None, second, 0.25, 0.0)
    apply_weight_patches(unet, model.patches)
    got = weight(unet, TO_Q[0]).detach().clone()
    apply_weight_patches(unet, {})
    expected = weight(unet, TO_Q[0]) - 1.5 * up1 @ down1 + 0.25 * up2 @ down2
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_patched_clone_never_changes_the_unpatched_models_output(unet):
    g = torch.Generator().manual_seed(7)
    shape = weight(unet, CONV1[0]).shape
    base = "lora_unet_" + CONV1[0].replace(".", "_")
    up, down = lora_pair(shape, 2, g)
    original = {n: p.detach().clone() for n, p in unet.named_parameters()}
    plain = FakeModel(unet)
    with_lora, _ = load_lora_for_models(plain, None, {base + ".lora_up.weight": up, base + ".lora_down.weight": down},
                                        1.0, 0.0)
    x, t, ctx = torch.randn(1, 4, 8, 8), torch.tensor([500.0]), torch.randn(1, 3, SD1_TINY.context_dim)

    def run(value):
        apply_weight_patches(unet, value.patches)
        with torch.no_grad():
            return unet(x, t, ctx)

    before = run(plain)
    lora_out = run(with_lora)
    after = run(plain)
    assert not torch.allclose(lora_out, before)
    assert torch.equal(before, after)
    assert all(torch.equal(p, original[n]) for n, p in unet.named_parameters())
    assert not with_lora.patches is plain.patches and plain.patches == {}


def test_unet_key_names_agree_with_diffusers_layout():
    reference = diffusers_unet(SD1_TINY)
    diffusers_keys = list(reference.state_dict())
    expected = dict(zip(diffusers_keys, to_ldm_unet_keys({k: k for k in diffusers_keys}, SD1_TINY)))
    assert diffusers_to_ldm(SD1_TINY, diffusers_keys) == expected
    ldm_keys = list(UNetModel(SD1_TINY).state_dict())
    assert ldm_to_diffusers(SD1_TINY, ldm_keys) == {v: k for k, v in expected.items()}


def test_peft_lora_from_diffusers_gives_diffusers_outputs():
    import peft
    from peft.utils import get_peft_model_state_dict

    reference = diffusers_unet(SD1_TINY)
    ours = UNetModel(SD1_TINY).eval()
    ours.load_state_dict(to_ldm_unet_keys(reference.state_dict(), SD1_TINY))
    config = peft.LoraConfig(r=4, lora_alpha=6, init_lora_weights=False,
                             target_modules=["to_q", "to_k", "to_v", "to_out.0", "proj_in", "conv1", "ff.net.2"])
    reference.add_adapter(config)
    lora = {"unet." + k: v.clone() for k, v in get_peft_model_state_dict(reference).items()}
    for key in lora:  # the adapter's alpha travels as `.alpha` in kohya-converted files; diffusers keeps it in config
        assert key.endswith((".lora_A.weight", ".lora_B.weight"))
    base_names = {k.rsplit(".lora_", 1)[0] for k in lora}
    lora.update({name + ".alpha": torch.tensor(6.0) for name in base_names})
    torch.manual_seed(8)
    x, t, ctx = torch.randn(2, 4, 16, 16), torch.tensor([900.0, 20.0]), torch.randn(2, 5, SD1_TINY.context_dim)
    model, _ = load_lora_for_models(FakeModel(ours), None, lora, 1.0, 0.0)
    assert len(model.patches) == len(base_names)
    apply_weight_patches(ours, model.patches)
    with torch.no_grad():
        expected = reference(x, t, encoder_hidden_states=ctx).sample
        actual = ours(x, t, ctx)
    apply_weight_patches(ours, {})
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


def test_text_encoder_lora_hf_and_openclip_layouts():
    from diffusion.text_encoder import text_encoder_from_state_dict
    from tests.helpers.tiny_checkpoint import tiny_state_dict

    g = torch.Generator().manual_seed(9)
    for layout, prefix in (("sd1", "cond_stage_model."), ("sd2", "cond_stage_model.")):
        clip = text_encoder_from_state_dict(tiny_state_dict(layout), prefix)
        width = clip.model.config.width
        up, down = lora_pair((width, width), 2, g)
        base = "lora_te_text_model_encoder_layers_0_self_attn_v_proj"
        lora = {base + ".lora_up.weight": up, base + ".lora_down.weight": down, base + ".alpha": torch.tensor(2.0)}
        _, patched_clip = load_lora_for_models(None, clip, lora, 0.0, 0.8)
        params = dict(clip.model.named_parameters())
        if layout == "sd1":
            name, rows = "text_model.encoder.layers.0.self_attn.v_proj.weight", slice(None)
        else:
            name, rows = "transformer.resblocks.0.attn.in_proj_weight", slice(2 * width, 3 * width)
        original = params[name].detach().clone()
        plain_encoding = clip.encode("a red square")[0][0]
        lora_encoding = patched_clip.encode("a red square")[0][0]
        patched_weight = params[name].detach().clone()
        assert torch.equal(clip.encode("a red square")[0][0], plain_encoding)
        expected = original.clone()
        expected[rows] += 0.8 * (up @ down)
        torch.testing.assert_close(patched_weight, expected, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(lora_encoding, plain_encoding)
        assert torch.equal(params[name], original)
        assert patched_clip.clone().patches == patched_clip.patches


def test_unknown_keys_are_reported_not_fatal(unet, caplog):
    parsed = parse_lora({"lora_unet_no_such_layer.lora_up.weight": torch.zeros(2, 1),
                         "lora_unet_no_such_layer.lora_down.weight": torch.zeros(1, 2), "something_else": torch.zeros(1)})
    patches: dict = {}
    assert add_patches(patches, parsed, unet_key_map(unet.state_dict().keys(), SD1_TINY), 1.0) == set()
    assert patches == {} and parsed.unsupported == ["something_else"]
    model, _ = load_lora_for_models(FakeModel(unet), None, parsed, 1.0, 1.0)
    assert "lora key not loaded: lora_unet_no_such_layer" in caplog.text
