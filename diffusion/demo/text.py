"""The demo model's text side: its small CLIP text encoder and SD1's 77-token layout.

Prompts are tokenised as every SD1 checkpoint expects: start token, the prompt's tokens, end
token, then end tokens as padding up to 77 positions (prompts longer than 75 tokens are cut here;
the demo captions are far shorter). The text encoder's last hidden state after the final layer
norm is the UNet's context, as ``CLIPTextEncode`` gives it for SD1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffusion.models.clip_text import CLIPTextConfig, CLIPTextModel
from diffusion.models.tokenizer import CLIPTokenizer

from .checkpoint import TEXT_LAYERS, TEXT_WIDTH

CONTEXT_LENGTH = 77
DEMO_TEXT = CLIPTextConfig(
    layout="hf", vocab_size=49408, max_positions=CONTEXT_LENGTH, width=TEXT_WIDTH, layers=TEXT_LAYERS,
    heads=TEXT_WIDTH // 64, mlp_width=4 * TEXT_WIDTH, activation="quick_gelu", projection_dim=None,
)


def build_text_encoder(config: CLIPTextConfig = DEMO_TEXT) -> CLIPTextModel:
    """A freshly initialised CLIP text encoder (CLIP's initialisation: small normal embeddings)."""
    model = CLIPTextModel(config)
    with torch.no_grad():
        model.text_model.embeddings.token_embedding.weight.normal_(0.0, 0.02)
        model.text_model.embeddings.position_embedding.weight.normal_(0.0, 0.01)
    return model


def token_rows(tokenizer: CLIPTokenizer, prompts: list[str]) -> Tensor:
    """SD1 token ids ``[N, 77]``: start, prompt, end, end-padding."""
    rows = torch.full((len(prompts), CONTEXT_LENGTH), tokenizer.end_token, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids = [tokenizer.start_token, *tokenizer.encode(prompt)[: CONTEXT_LENGTH - 2], tokenizer.end_token]
        rows[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return rows


def encode_tokens(text_encoder: nn.Module, tokens: Tensor) -> Tensor:
    """The UNet's context ``[N, 77, width]`` for token rows ``[N, 77]``."""
    return text_encoder(tokens).last_hidden_state
