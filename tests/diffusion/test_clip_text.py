"""CLIP text transformers: both checkpoint layouts against transformers' CLIPTextModel.

A tiny random configuration (width 128 = 2 heads of 64, 3 layers, vocabulary 1000) keeps
the run short; the architecture and the key layout are the real ones.
"""

from __future__ import annotations

import pytest
import torch
import transformers

from diffusion.models.clip_text import (
    CLIPTextConfig,
    CLIPTextModel,
    OpenCLIPTextModel,
    clip_text_config_from_state_dict,
    clip_text_model_from_state_dict,
)

VOCAB, WIDTH, LAYERS, MLP, POSITIONS = 1000, 128, 3, 256, 77
START, END = VOCAB - 2, VOCAB - 1
TOLERANCE = dict(atol=1e-5, rtol=1e-5)


def _hf_config(activation: str, projection_dim: int = WIDTH) -> transformers.CLIPTextConfig:
    return transformers.CLIPTextConfig(
        vocab_size=VOCAB, hidden_size=WIDTH, intermediate_size=MLP, num_hidden_layers=LAYERS,
        num_attention_heads=WIDTH // 64, max_position_embeddings=POSITIONS, hidden_act=activation,
        projection_dim=projection_dim, bos_token_id=START, eos_token_id=END, pad_token_id=END,
        attn_implementation="eager",
    )


def _random_state_dict(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, tensor in model.state_dict().items():
        if not tensor.is_floating_point():
            state[key] = tensor
        elif "norm" in key or key.startswith("ln_") or ".ln_" in key:
            # Layer norms near identity, as trained ones are, so outputs stay in a sane range.
            base = 1.0 if key.endswith("weight") else 0.0
            state[key] = base + 0.1 * torch.randn(tensor.shape, generator=generator)
        else:
            state[key] = 0.05 * torch.randn(tensor.shape, generator=generator)
    return state


def _token_batch() -> torch.Tensor:
    """Two 77-token chunks: SD1-style end-token padding and SD2-style zero padding."""
    generator = torch.Generator().manual_seed(7)
    words = torch.randint(1, VOCAB - 2, (2, 20), generator=generator)
    first = torch.cat([torch.tensor([START]), words[0], torch.full((56,), END)])
    second = torch.cat([torch.tensor([START]), words[1], torch.tensor([END]), torch.zeros(55, dtype=torch.long)])
    return torch.stack([first, second])


@pytest.fixture(scope="module")
def hf_reference() -> transformers.CLIPTextModelWithProjection:
    torch.manual_seed(0)
    reference = transformers.CLIPTextModelWithProjection(_hf_config("quick_gelu"))
    reference.load_state_dict(_random_state_dict(reference, seed=1))
    return reference.eval()


def _reference_outputs(reference, tokens):
    with torch.no_grad():
        return reference(input_ids=tokens, output_hidden_states=True)


def test_config_is_detected_from_the_tensors(hf_reference):
    config = clip_text_config_from_state_dict(hf_reference.state_dict())
    assert config == CLIPTextConfig(layout="hf", vocab_size=VOCAB, max_positions=POSITIONS, width=WIDTH,
                                    layers=LAYERS, heads=2, mlp_width=MLP, activation="quick_gelu",
                                    projection_dim=WIDTH)


def test_clip_l_layout_loads_transformers_weights_by_name(hf_reference):
    model = clip_text_model_from_state_dict(hf_reference.state_dict())
    assert isinstance(model, CLIPTextModel)
    assert set(model.state_dict()) == set(hf_reference.state_dict()) - {"text_model.embeddings.position_ids"}


def test_clip_l_layout_matches_transformers_at_every_layer(hf_reference):
    model = clip_text_model_from_state_dict(hf_reference.state_dict())
    tokens = _token_batch()
    expected = _reference_outputs(hf_reference, tokens)
    final_norm = hf_reference.text_model.final_layer_norm
    for layer in range(LAYERS):
        raw = model(tokens, end_token=END, layer_index=layer, normalize_hidden=False)
        normed = model(tokens, end_token=END, layer_index=layer - LAYERS)
        torch.testing.assert_close(raw.hidden_state, expected.hidden_states[layer + 1], **TOLERANCE)
        with torch.no_grad():
            torch.testing.assert_close(normed.hidden_state, final_norm(expected.hidden_states[layer + 1]), **TOLERANCE)
    out = model(tokens, end_token=END)
    torch.testing.assert_close(out.last_hidden_state, expected.last_hidden_state, **TOLERANCE)
    torch.testing.assert_close(out.hidden_state, expected.last_hidden_state, **TOLERANCE)
    torch.testing.assert_close(out.pooled, expected.text_embeds, **TOLERANCE)


def test_clip_l_without_projection_pools_the_final_normed_end_token(hf_reference):
    weights = {k: v for k, v in hf_reference.state_dict().items() if not k.startswith("text_projection")}
    model = clip_text_model_from_state_dict(weights)
    tokens = _token_batch()
    expected = _reference_outputs(hf_reference, tokens)
    unprojected = expected.last_hidden_state[torch.arange(2), (tokens == END).int().argmax(-1)]
    torch.testing.assert_close(model(tokens, end_token=END).pooled, unprojected, **TOLERANCE)


def test_transformers_layout_of_vit_h_uses_gelu():
    """CLIP-L (768) is OpenAI's quick_gelu model; ViT-H (1024) saved in this layout uses GELU."""
    config = transformers.CLIPTextConfig(vocab_size=VOCAB, hidden_size=1024, intermediate_size=4096,
                                         num_hidden_layers=1, num_attention_heads=16)
    with torch.device("meta"):
        vit_h = transformers.CLIPTextModelWithProjection(config)
    detected = clip_text_config_from_state_dict(vit_h.state_dict())
    assert (detected.activation, detected.heads) == ("gelu", 16)


def test_spliced_input_embeddings_act_like_a_new_vocabulary_row(hf_reference):
    """A vector spliced into the embeddings (textual inversion) equals a token whose row it is."""
    model = clip_text_model_from_state_dict(hf_reference.state_dict())
    tokens = _token_batch()
    vector = 0.05 * torch.randn(WIDTH, generator=torch.Generator().manual_seed(3))
    embeds = model.embed_tokens(tokens)
    embeds[0, 3] = vector
    spliced = model(tokens, input_embeds=embeds, end_token=END)

    unused_id = next(i for i in range(1, VOCAB) if i not in tokens)
    reference = transformers.CLIPTextModelWithProjection(_hf_config("quick_gelu")).eval()
    weights = dict(hf_reference.state_dict())
    weights["text_model.embeddings.token_embedding.weight"] = weights[
        "text_model.embeddings.token_embedding.weight"].clone()
    weights["text_model.embeddings.token_embedding.weight"][unused_id] = vector
    reference.load_state_dict(weights)
    with_row = tokens.clone()
    with_row[0, 3] = unused_id
    expected = _reference_outputs(reference, with_row)
    torch.testing.assert_close(spliced.last_hidden_state, expected.last_hidden_state, **TOLERANCE)
    torch.testing.assert_close(spliced.pooled, expected.text_embeds, **TOLERANCE)


# --- OpenCLIP layout ----------------------------------------------------------------------------


def _open_clip_to_transformers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename OpenCLIP text-tower weights to transformers' keys (in_proj split into q, k, v)."""
    out = {
        "text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": sd["positional_embedding"],
        "text_model.final_layer_norm.weight": sd["ln_final.weight"],
        "text_model.final_layer_norm.bias": sd["ln_final.bias"],
        "text_projection.weight": sd["text_projection"].T.contiguous(),
    }
    renames = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
               "attn.out_proj": "self_attn.out_proj"}
    for layer in range(LAYERS):
        source, target = f"transformer.resblocks.{layer}.", f"text_model.encoder.layers.{layer}."
        for old, new in renames.items():
            for kind in ("weight", "bias"):
                out[f"{target}{new}.{kind}"] = sd[f"{source}{old}.{kind}"]
        for kind in ("weight", "bias"):
            for name, part in zip(("q_proj", "k_proj", "v_proj"), sd[f"{source}attn.in_proj_{kind}"].chunk(3)):
                out[f"{target}self_attn.{name}.{kind}"] = part
    return out


@pytest.fixture(scope="module")
def open_clip_weights() -> dict[str, torch.Tensor]:
    config = CLIPTextConfig(layout="open_clip", vocab_size=VOCAB, width=WIDTH, layers=LAYERS, heads=2,
                            mlp_width=MLP, activation="gelu", projection_dim=96)
    with torch.device("meta"):
        skeleton = OpenCLIPTextModel(config)
    weights = _random_state_dict(skeleton, seed=2)
    weights["logit_scale"] = torch.tensor(4.6)  # SD2 checkpoints carry it; the text encoder ignores it
    return weights


def test_open_clip_layout_is_detected_with_gelu_and_projection(open_clip_weights):
    config = clip_text_config_from_state_dict(open_clip_weights)
    assert (config.layout, config.width, config.layers, config.heads, config.mlp_width) == (
        "open_clip", WIDTH, LAYERS, 2, MLP)
    assert (config.activation, config.projection_dim) == ("gelu", 96)


def test_open_clip_layout_matches_transformers_with_converted_weights(open_clip_weights):
    model = clip_text_model_from_state_dict(open_clip_weights)
    assert isinstance(model, OpenCLIPTextModel)
    reference = transformers.CLIPTextModelWithProjection(_hf_config("gelu", projection_dim=96)).eval()
    reference.load_state_dict(_open_clip_to_transformers(open_clip_weights), strict=False)
    tokens = _token_batch()
    expected = _reference_outputs(reference, tokens)
    for layer in range(LAYERS):
        raw = model(tokens, end_token=END, layer_index=layer, normalize_hidden=False)
        torch.testing.assert_close(raw.hidden_state, expected.hidden_states[layer + 1], **TOLERANCE)
    penultimate = model(tokens, end_token=END, layer_index=-2)
    with torch.no_grad():
        expected_penultimate = reference.text_model.final_layer_norm(expected.hidden_states[-2])
    torch.testing.assert_close(penultimate.hidden_state, expected_penultimate, **TOLERANCE)
    torch.testing.assert_close(penultimate.last_hidden_state, expected.last_hidden_state, **TOLERANCE)
    torch.testing.assert_close(penultimate.pooled, expected.text_embeds, **TOLERANCE)


def test_fp16_weights_stay_fp16_and_compute_in_the_input_dtype(hf_reference):
    half = {k: v.half() if v.is_floating_point() else v for k, v in hf_reference.state_dict().items()}
    model = clip_text_model_from_state_dict(half)
    assert model.text_model.encoder.layers[0].mlp.fc1.weight.dtype == torch.float16
    tokens = _token_batch()
    out = model(tokens, input_embeds=model.embed_tokens(tokens, torch.float32), end_token=END)
    expected = _reference_outputs(hf_reference, tokens).last_hidden_state
    assert out.last_hidden_state.dtype == torch.float32
    torch.testing.assert_close(out.last_hidden_state, expected, atol=2e-2, rtol=2e-2)


def test_missing_or_misshapen_weights_are_reported_by_name(hf_reference):
    weights = dict(hf_reference.state_dict())
    del weights["text_model.encoder.layers.1.mlp.fc2.bias"]
    with pytest.raises(ValueError, match="layers.1.mlp.fc2.bias"):
        clip_text_model_from_state_dict(weights)
    with pytest.raises(ValueError, match="64 channels per head"):
        clip_text_config_from_state_dict({"token_embedding.weight": torch.zeros(10, 96),
                                          "positional_embedding": torch.zeros(77, 96)})
