"""TextEncoder: ComfyUI's prompt handling (chunks, weights, embeddings, CLIP skip).

The text transformer is a tiny random CLIP (real 49,408-token vocabulary, width 128, 3
layers); the expected numbers come from transformers' CLIPTextModelWithProjection run on
the same weights and token ids.
"""

from __future__ import annotations

import pytest
import safetensors.torch
import torch
import transformers

from diffusion.models.tokenizer import CLIPTokenizer
from diffusion.text_encoder import SD1_CLIP_L, SD2_CLIP_H, TextEncoder, text_encoder_from_state_dict

WIDTH, LAYERS, VOCAB = 128, 3, 49408
START, END = 49406, 49407
TOLERANCE = dict(atol=1e-5, rtol=1e-5)
LONG_PROMPT_WORDS = ("cat", "dog", "red", "blue", "house", "tree", "sky", "sun")  # one token each


@pytest.fixture(scope="module")
def tokenizer() -> CLIPTokenizer:
    return CLIPTokenizer()


@pytest.fixture(scope="module")
def reference() -> transformers.CLIPTextModelWithProjection:
    config = transformers.CLIPTextConfig(
        vocab_size=VOCAB, hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_hidden_layers=LAYERS,
        num_attention_heads=WIDTH // 64, max_position_embeddings=77, hidden_act="quick_gelu",
        projection_dim=WIDTH, bos_token_id=START, eos_token_id=END, pad_token_id=END,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    model = transformers.CLIPTextModelWithProjection(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0.0, 0.05)
    return model


@pytest.fixture(scope="module")
def checkpoint(reference) -> dict[str, torch.Tensor]:
    """An SD1 checkpoint's text-encoder part (no projection, as SD1 files have none)."""
    return {f"cond_stage_model.transformer.{k}": v for k, v in reference.state_dict().items()
            if not k.startswith("text_projection")}


@pytest.fixture()
def sd1(checkpoint, tokenizer, tmp_path) -> TextEncoder:
    return text_encoder_from_state_dict(checkpoint, "cond_stage_model.", embedding_dirs=[tmp_path],
                                        tokenizer=tokenizer)


def _reference_hidden(reference, ids: list[list[int]], layer: int = -1) -> torch.Tensor:
    """transformers' output at `layer` (final layer norm applied), `[N, 77, D]`."""
    with torch.no_grad():
        out = reference(input_ids=torch.tensor(ids), output_hidden_states=True)
        return reference.text_model.final_layer_norm(out.hidden_states[layer])


def _reference_pooled(reference, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        out = reference(input_ids=torch.tensor([ids]))
        return out.last_hidden_state[0, ids.index(END)].unsqueeze(0)


def _ids(chunk) -> list[int]:
    return [int(token) for token, _ in chunk]


# -- tokenize -------------------------------------------------------------------------------------


def test_short_prompt_is_one_chunk_framed_and_padded_with_the_end_token(sd1, tokenizer):
    chunks = sd1.tokenize("a photo of a cat")["l"]
    words = tokenizer.encode("a photo of a cat")
    assert [_ids(chunk) for chunk in chunks] == [[START] + words + [END] * (77 - 1 - len(words))]
    assert all(weight == 1.0 for _, weight in chunks[0])


def test_long_prompt_becomes_chunks_of_75_tokens(sd1, tokenizer):
    prompt = " ".join(LONG_PROMPT_WORDS[i % 8] for i in range(200))
    words = tokenizer.encode(prompt)
    assert len(words) == 200
    chunks = sd1.tokenize(prompt)["l"]
    assert [_ids(c) for c in chunks] == [
        [START] + words[:75] + [END],
        [START] + words[75:150] + [END],
        [START] + words[150:] + [END] + [END] * 25,
    ]


def test_short_weighted_segment_moves_whole_to_the_next_chunk(sd1, tokenizer):
    filler = " ".join(["cat"] * 74)  # 74 + 2 tokens do not fit in 75
    chunks = sd1.tokenize(f"{filler} (red hat:1.2)")["l"]
    red_hat = tokenizer.encode("red hat")
    assert _ids(chunks[0]) == [START] + [tokenizer.encode("cat")[0]] * 74 + [END] * 2
    assert _ids(chunks[1])[: 2 + len(red_hat)] == [START] + red_hat + [END]
    assert [w for _, w in chunks[1][1 : 1 + len(red_hat)]] == [1.2] * len(red_hat)


def test_sd2_pads_with_zero(checkpoint, tokenizer):
    encoder = text_encoder_from_state_dict(checkpoint, "cond_stage_model.", tokenizer=tokenizer)
    encoder.family = SD2_CLIP_H
    ids = _ids(encoder.tokenize("a cat")["h"][0])
    assert ids[:4] == [START, *tokenizer.encode("a cat"), END] and set(ids[4:]) == {0}


def test_weights_follow_the_emphasis_syntax(sd1, tokenizer):
    chunk = sd1.tokenize("a ((cat)) (dog:0.5) \\(x\\)")["l"][0]
    expected = ([(t, 1.0) for t in tokenizer.encode("a ")] + [(t, 1.1 * 1.1) for t in tokenizer.encode("cat")]
                + [(t, 0.5) for t in tokenizer.encode("dog")] + [(t, 1.0) for t in tokenizer.encode(" (x)")])
    assert [(int(t), pytest.approx(w)) for t, w in chunk[1 : 1 + len(expected)]] == expected


# -- encode ---------------------------------------------------------------------------------------


def test_unweighted_prompt_matches_transformers_last_layer(sd1, reference):
    chunks = sd1.tokenize("a photo of a cat")["l"]
    cond, pooled = sd1.encode_from_tokens(sd1.tokenize("a photo of a cat"), return_pooled=True)
    ids = [_ids(c) for c in chunks]
    torch.testing.assert_close(cond, _reference_hidden(reference, ids), **TOLERANCE)
    torch.testing.assert_close(pooled, _reference_pooled(reference, ids[0]), **TOLERANCE)
    assert cond.dtype == torch.float32 and cond.device.type == "cpu"


def test_long_prompt_concatenates_chunks_and_pools_the_first(sd1, reference):
    prompt = " ".join(LONG_PROMPT_WORDS[i % 8] for i in range(200))
    (cond, extras), = sd1.encode(prompt)
    ids = [_ids(c) for c in sd1.tokenize(prompt)["l"]]
    assert cond.shape == (1, 3 * 77, WIDTH)
    torch.testing.assert_close(cond, _reference_hidden(reference, ids).reshape(1, 3 * 77, WIDTH), **TOLERANCE)
    torch.testing.assert_close(extras["pooled_output"], _reference_pooled(reference, ids[0]), **TOLERANCE)


def test_weighted_tokens_move_away_from_the_empty_prompt(sd1, reference):
    chunk = sd1.tokenize("a (cat:1.5) photo")["l"][0]
    cond = sd1.encode_from_tokens([chunk])
    empty_ids = [START, END] + [END] * 75
    z, z_empty = _reference_hidden(reference, [_ids(chunk), empty_ids])
    weights = torch.tensor([w for _, w in chunk]).unsqueeze(-1)
    expected = torch.where(weights != 1.0, (z - z_empty) * weights + z_empty, z)
    torch.testing.assert_close(cond[0], expected, **TOLERANCE)
    assert not torch.allclose(cond[0, 2], z[2])
    torch.testing.assert_close(cond[0, 1], z[1], **TOLERANCE)


def test_clip_skip_takes_the_penultimate_layer_with_final_norm(sd1, reference):
    tokens = sd1.tokenize("a photo of a cat")
    ids = [_ids(tokens["l"][0])]
    skipped = sd1.clone()
    skipped.clip_layer(-2)
    torch.testing.assert_close(skipped.encode_from_tokens(tokens), _reference_hidden(reference, ids, -2), **TOLERANCE)
    # the clone's choice does not leak into the original
    torch.testing.assert_close(sd1.encode_from_tokens(tokens), _reference_hidden(reference, ids, -1), **TOLERANCE)
    beyond = sd1.clone()
    beyond.clip_layer(-24)
    torch.testing.assert_close(beyond.encode_from_tokens(tokens), _reference_hidden(reference, ids, -1), **TOLERANCE)


def test_sd2_defaults_to_the_penultimate_layer(checkpoint, tokenizer, reference):
    encoder = text_encoder_from_state_dict(checkpoint, "cond_stage_model.", tokenizer=tokenizer)
    encoder.family = SD2_CLIP_H
    tokens = encoder.tokenize("a cat")
    ids = [_ids(tokens["h"][0])]
    torch.testing.assert_close(encoder.encode_from_tokens(tokens), _reference_hidden(reference, ids, -2), **TOLERANCE)
    encoder.clip_layer(-1)
    torch.testing.assert_close(encoder.encode_from_tokens(tokens), _reference_hidden(reference, ids, -1), **TOLERANCE)


# -- textual inversion ----------------------------------------------------------------------------


def test_embedding_vectors_take_token_slots(sd1, tokenizer, tmp_path):
    vectors = 0.05 * torch.randn(2, WIDTH, generator=torch.Generator().manual_seed(5))
    safetensors.torch.save_file({"emb_params": vectors}, str(tmp_path / "style.safetensors"))
    chunk = sd1.tokenize("a embedding:style cat")["l"][0]
    a, cat = tokenizer.encode("a"), tokenizer.encode("cat")
    assert _ids(chunk[:2]) == [START, *a]
    torch.testing.assert_close(torch.stack([chunk[2][0], chunk[3][0]]), vectors)
    assert _ids(chunk[4:6]) == [*cat, END]
    assert len(chunk) == 77


def test_embedding_encoding_equals_a_vocabulary_row_holding_the_vector(sd1, reference, tmp_path):
    vector = 0.05 * torch.randn(1, WIDTH, generator=torch.Generator().manual_seed(6))
    torch.save({"string_to_param": {"*": torch.nn.Parameter(vector)}, "name": "dot", "step": 100},
               tmp_path / "dot.pt")
    cond = sd1.encode_from_tokens(sd1.tokenize("embedding:dot, cat"))
    row = 400  # any id: its embedding row is overwritten in a copy of the reference
    patched = transformers.CLIPTextModelWithProjection(reference.config).eval()
    patched.load_state_dict(reference.state_dict())
    with torch.no_grad():
        patched.text_model.embeddings.token_embedding.weight[row] = vector[0]
    ids = [START, row] + sd1.tokenizer.encode(", cat") + [END]
    ids += [END] * (77 - len(ids))
    torch.testing.assert_close(cond, _reference_hidden(patched, [ids]), **TOLERANCE)


def test_missing_embedding_is_dropped_and_outside_paths_are_refused(sd1, tokenizer, tmp_path):
    outside = tmp_path.parent / "outside.safetensors"
    safetensors.torch.save_file({"emb_params": torch.zeros(1, WIDTH)}, str(outside))
    for prompt in ("a embedding:nothing_here cat", "a embedding:../outside cat"):
        chunk = sd1.tokenize(prompt)["l"][0]
        assert _ids(chunk[:4]) == [START, *tokenizer.encode("a"), *tokenizer.encode("cat"), END]


def test_multi_encoder_embedding_files_give_the_clip_l_part_to_sd1(sd1, tmp_path):
    clip_l = torch.ones(3, WIDTH)
    safetensors.torch.save_file({"clip_g": torch.zeros(3, 1280), "clip_l": clip_l}, str(tmp_path / "both.safetensors"))
    torch.testing.assert_close(sd1.load_embedding("both"), clip_l)


def test_embedding_name_ends_at_whitespace_and_trailing_commas_become_text(sd1, tokenizer, tmp_path):
    safetensors.torch.save_file({"emb_params": torch.ones(1, WIDTH)}, str(tmp_path / "star.safetensors"))
    for prompt, text_after in (("embedding:star,  big cat", ", big cat"), ("embedding:star\nbig cat", "big cat")):
        chunk = sd1.tokenize(prompt)["l"][0]
        after = tokenizer.encode(text_after)
        assert isinstance(chunk[1][0], torch.Tensor)
        assert _ids(chunk[2 : 3 + len(after)]) == [*after, END]


def test_embedding_of_another_width_is_ignored(sd1, tokenizer, tmp_path):
    safetensors.torch.save_file({"clip_g": torch.zeros(1, 1280)}, str(tmp_path / "xl.safetensors"))
    assert _ids(sd1.tokenize("embedding:xl")["l"][0][:2]) == [START, END]


# -- detection ------------------------------------------------------------------------------------


def test_detects_the_layouts_and_their_prefixes(reference, checkpoint, tokenizer):
    hf = {k: v for k, v in reference.state_dict().items() if not k.startswith("text_projection")}
    standalone = text_encoder_from_state_dict(hf, "", tokenizer=tokenizer)
    assert standalone.family == SD1_CLIP_L and standalone.key_prefix == ""
    sd1 = text_encoder_from_state_dict(checkpoint, "cond_stage_model.", tokenizer=tokenizer)
    assert sd1.key_prefix == "cond_stage_model.transformer."
    early = {k.replace("transformer.text_model.", "transformer."): v for k, v in checkpoint.items()}
    tokens = sd1.tokenize("a cat")
    torch.testing.assert_close(
        text_encoder_from_state_dict(early, "cond_stage_model.", tokenizer=tokenizer).encode_from_tokens(tokens),
        sd1.encode_from_tokens(tokens), atol=0, rtol=0)


def test_sd2_checkpoint_in_open_clip_layout(reference, tokenizer):
    hf = reference.state_dict()
    prefix = "cond_stage_model.model."
    sd = {f"{prefix}token_embedding.weight": hf["text_model.embeddings.token_embedding.weight"],
          f"{prefix}positional_embedding": hf["text_model.embeddings.position_embedding.weight"],
          f"{prefix}ln_final.weight": hf["text_model.final_layer_norm.weight"],
          f"{prefix}ln_final.bias": hf["text_model.final_layer_norm.bias"],
          f"{prefix}text_projection": hf["text_projection.weight"].T.contiguous(),
          f"{prefix}logit_scale": torch.tensor(4.6)}
    pairs = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
             "self_attn.out_proj": "attn.out_proj"}
    for i in range(LAYERS):
        source = f"text_model.encoder.layers.{i}."
        for old, new in pairs.items():
            for kind in ("weight", "bias"):
                sd[f"{prefix}transformer.resblocks.{i}.{new}.{kind}"] = hf[f"{source}{old}.{kind}"]
        for kind in ("weight", "bias"):
            sd[f"{prefix}transformer.resblocks.{i}.attn.in_proj_{kind}"] = torch.cat(
                [hf[f"{source}self_attn.{p}.{kind}"] for p in ("q_proj", "k_proj", "v_proj")])
    encoder = text_encoder_from_state_dict(sd, "cond_stage_model.", tokenizer=tokenizer)
    assert encoder.family == SD2_CLIP_H and encoder.key_prefix == prefix
    # OpenCLIP-H computes with exact GELU where OpenAI's CLIP-L uses quick_gelu.
    config = transformers.CLIPTextConfig(**{**reference.config.to_dict(), "hidden_act": "gelu"})
    reference = transformers.CLIPTextModelWithProjection(config).eval()
    reference.load_state_dict(hf)
    tokens = encoder.tokenize("a cat")
    ids = _ids(tokens["h"][0])
    cond, pooled = encoder.encode_from_tokens(tokens, return_pooled=True)
    torch.testing.assert_close(cond, _reference_hidden(reference, [ids], -2), **TOLERANCE)
    with torch.no_grad():
        expected_pooled = reference(input_ids=torch.tensor([ids])).text_embeds
    torch.testing.assert_close(pooled, expected_pooled, **TOLERANCE)
