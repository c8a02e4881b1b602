"""The ControlNet network in the original `control_model.` layout (Zhang et al. 2023, cldm/cldm.py).

A trainable copy of the UNet's encoder (`time_embed`, `label_emb`, `input_blocks`,
`middle_block`, built from the UNet's own block classes) sees the latent plus an embedded
condition image. After every input block and after the middle block a zero-initialised 1×1
convolution (`zero_convs.N.0`, `middle_block_out.0`) emits a residual that the UNet adds to
its skip connections and to its middle block's output.

`input_hint_block` embeds the hint (an image at 8× the latent size) with eight 3×3
convolutions (SiLU between them; the 3rd, 5th and 7th stride 2), the last one zero-initialised
to `model_channels`; its output is added after the first input block (`conv_in`).
"""

from __future__ import annotations

from collections.abc import Mapping
import torch
from torch import Tensor, nn

from diffusion.models.layers import Linear, conv1x1, conv3x3
from diffusion.models.unet import UNetConfig, encoder_blocks, timestep_embedding

HINT_STRIDED_CONVS = (4, 8, 12)  # indices in input_hint_block of the stride-2 convolutions


def hint_block_shapes(state_dict: Mapping[str, Tensor], prefix: str) -> list[tuple[int, int]]:
    """`(in, out)` channels of each conv of `input_hint_block`, read from the weights."""
    shapes = []
    index = 0
    while f"{prefix}input_hint_block.{index}.weight" in state_dict:
        weight = state_dict[f"{prefix}input_hint_block.{index}.weight"]
        shapes.append((int(weight.shape[1]), int(weight.shape[0])))
        index += 2
    return shapes


class ControlNetModel(nn.Module):
    """The control network; attribute paths are the keys after `control_model.`.

    Args:
        config: the shape of the UNet it controls (only the encoder side is used).
        hint_shapes: `(in, out)` channels of the hint convolutions (default SD's 3→16→…→256→mc).
    """

    def __init__(self, config: UNetConfig, hint_shapes: list[tuple[int, int]] | None = None):
        super().__init__()
        self.config = config
        mc = config.model_channels
        emb_dim = mc * 4
        self.time_embed = nn.Sequential(Linear(mc, emb_dim), nn.SiLU(), Linear(emb_dim, emb_dim))
        if config.adm_in_channels is not None:
            self.label_emb = nn.Sequential(nn.Sequential(
                Linear(config.adm_in_channels, emb_dim), nn.SiLU(), Linear(emb_dim, emb_dim)))

        hint_shapes = hint_shapes or [(3, 16), (16, 16), (16, 32), (32, 32), (32, 96), (96, 96), (96, 256), (256, mc)]
        hint_layers: list[nn.Module] = []
        for number, (c_in, c_out) in enumerate(hint_shapes):
            if number:
                hint_layers.append(nn.SiLU())
            stride = 2 if 2 * number in HINT_STRIDED_CONVS else 1
            hint_layers.append(conv3x3(c_in, c_out, stride=stride))
        self.input_hint_block = nn.Sequential(*hint_layers)

        self.input_blocks, self.middle_block, channels = encoder_blocks(config)
        self.zero_convs = nn.ModuleList(nn.Sequential(conv1x1(ch, ch)) for ch in channels)
        ch = channels[-1]
        self.middle_block_out = nn.Sequential(conv1x1(ch, ch))

    def forward(self, x: Tensor, hint: Tensor, timesteps: Tensor, context: Tensor | None,
                y: Tensor | None = None) -> list[Tensor]:
        """Residuals for the UNet.

        Args:
            x: model input `[B, in_channels, h, w]` (already scaled by `calculate_input`).
            hint: condition image `[B, hint_channels, 8h, 8w]`.
            timesteps: `[B]`.
            context: text conditioning `[B, T, context_dim]`.
            y: vector conditioning for models with `label_emb`.

        Returns:
            One residual per input block, in block order, then the middle block's.
        """
        dtype = x.dtype
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels).to(dtype))
        if self.config.adm_in_channels is not None:
            emb = emb + self.label_emb(y.to(dtype))
        context = None if context is None else context.to(dtype)
        guided_hint: Tensor | None = self.input_hint_block(hint.to(dtype))
        residuals = []
        h = x
        for block, zero_conv in zip(self.input_blocks, self.zero_convs):
            h = block(h, emb, context)
            if guided_hint is not None:
                h = h + guided_hint
                guided_hint = None
            residuals.append(zero_conv(h))
        h = self.middle_block(h, emb, context)
        residuals.append(self.middle_block_out(h))
        return residuals


def zero_init(model: ControlNetModel) -> ControlNetModel:
    """Zero the output convolutions, as a freshly initialised ControlNet has them (for training)."""
    with torch.no_grad():
        for layer in [model.input_hint_block[-1], model.middle_block_out[0]] + [z[0] for z in model.zero_convs]:
            layer.weight.zero_()
            layer.bias.zero_()
    return model
