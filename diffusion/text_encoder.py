"""The `CLIP` value of the graph: prompt text to CONDITIONING for SD1.x and SD2.x.

A `TextEncoder` pairs the CLIP tokenizer with a CLIP text transformer and reproduces
ComfyUI's prompt handling, so a prompt gives the same conditioning in both:

* **Weights.** `(text:1.2)`, `(text)` ×1.1 and nesting (`diffusion.prompt_weights`). A
  weighted token's output is pulled away from the encoding of the empty prompt:
  `z = (z - z_empty) * w + z_empty`, where `z_empty` is the encoding of start, end and
  padding tokens at the same positions.
* **Chunks.** Tokens are packed into chunks of 75 between a start token (49406) and an end
  token (49407), padded to 77 (SD1 pads with the end token, SD2 with 0). A weighted segment
  shorter than 8 tokens is not split across two chunks; a longer one fills the chunk and
  carries on in the next. The chunks' outputs are concatenated along the token axis:
  `[1, 77·k, D]`. The pooled output is that of the first chunk.
* **Textual inversion.** `embedding:name` loads `name(.safetensors|.pt|.bin)` from the
  embedding folders and puts its vectors in place of tokens (each vector takes one token
  slot). A missing name is dropped with a warning, as ComfyUI does.
* **CLIP skip.** `clip_layer(-2)` takes the penultimate layer's output, final layer norm
  applied. SD1 defaults to the last layer; SD2 to the penultimate one.

Tokens are returned as `{"l": chunks}` (SD1's CLIP-L) or `{"h": chunks}` (SD2's
OpenCLIP-H), the shape ComfyUI's `CLIP.tokenize` gives, where each chunk is a list of
`(token, weight)` pairs and a token is an id or an embedding vector `[D]`.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import torch
from torch import Tensor, nn

from diffusion.lora.patching import apply_weight_patches
from diffusion.models.clip_text import HF_LAYOUT, clip_text_model_from_state_dict
from diffusion.models.tokenizer import CLIPTokenizer
from diffusion.prompt_weights import parse_prompt_weights

log = logging.getLogger(__name__)

Token = Union[int, Tensor]
TokenChunk = list[tuple[Token, float]]
Conditioning = list[list[Any]]

EMBEDDING_PREFIX = "embedding:"
EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin")
# A weighted segment of fewer tokens than this moves whole to the next chunk instead of splitting.
MAX_WORD_LENGTH = 8
_EMBEDDING_REFERENCE = re.compile(rf"[ \n]{EMBEDDING_PREFIX}")


@dataclass(frozen=True)
class TextEncoderFamily:
    """What differs between the SD1 and SD2 text encoders besides the weights.

    Attributes:
        name: key of the token dict (`"l"` CLIP-L, `"h"` OpenCLIP-H).
        embedding_key: key picked from multi-encoder embedding files.
        pad_token: id that fills a chunk after its end token.
        default_layer: layer used when `clip_layer` was never called (None = last).
    """

    name: str
    embedding_key: str
    pad_token: int
    default_layer: int | None


SD1_CLIP_L = TextEncoderFamily(name="l", embedding_key="clip_l", pad_token=49407, default_layer=None)
SD2_CLIP_H = TextEncoderFamily(name="h", embedding_key="clip_h", pad_token=0, default_layer=-2)


class TextEncoder:
    """Tokenizer + CLIP text transformer + layer choice + embedding folders (the CLIP value).

    Clones share the model and the tokenizer; `clip_layer` changes only the clone it is
    called on (CLIPSetLastLayer clones first).

    Args:
        model: a `CLIPTextModel` or `OpenCLIPTextModel`.
        tokenizer: the CLIP tokenizer.
        family: `SD1_CLIP_L` or `SD2_CLIP_H`.
        devices: a `diffusion.devices.DeviceManager`, or None for CPU float32.
        embedding_dirs: folders searched for `embedding:name`.
        key_prefix: the checkpoint prefix the model's keys were read under (for LoRA key maps).
    """

    def __init__(self, model: nn.Module, tokenizer: CLIPTokenizer, family: TextEncoderFamily,
                 devices: Any = None, embedding_dirs: Iterable[str | Path] = (), key_prefix: str = ""):
        self.model = model
        self.tokenizer = tokenizer
        self.family = family
        self.devices = devices
        self.embedding_dirs = tuple(Path(d) for d in embedding_dirs)
        self.key_prefix = key_prefix
        self.layer_idx: int | None = None
        self.patches: dict[str, list] = {}  # LoRA weight patches (diffusion.lora), applied when encoding

    # -- the CLIP contract -------------------------------------------------------------------

    def clone(self) -> TextEncoder:
        """A copy sharing the weights, with its own layer choice."""
        copy = TextEncoder(self.model, self.tokenizer, self.family, self.devices, self.embedding_dirs,
                           self.key_prefix)
        copy.layer_idx = self.layer_idx
        copy.patches = {name: list(entries) for name, entries in self.patches.items()}
        return copy

    def clip_layer(self, layer_idx: int) -> None:
        """Stop at layer `layer_idx` (negative from the end: -1 last, -2 penultimate)."""
        self.layer_idx = layer_idx

    def torch_modules(self) -> list[nn.Module]:
        """The modules a `DeviceManager` moves (see `diffusion.devices.modules_of`)."""
        return [self.model]

    @property
    def width(self) -> int:
        return self.model.config.width

    def tokenize(self, text: str) -> dict[str, list[TokenChunk]]:
        """Weighted token chunks of a prompt (see the module docstring).

        Returns:
            `{family.name: chunks}`; each chunk has exactly 77 `(token, weight)` pairs.
        """
        groups: list[TokenChunk] = []
        for segment, weight in parse_prompt_weights(text):
            for part in _split_embedding_references(segment):
                groups.extend(self._tokens_of_part(part, weight))
        return {self.family.name: self._pack_chunks(groups)}

    def encode_from_tokens(self, tokens: Mapping[str, list[TokenChunk]] | Sequence[TokenChunk],
                           return_pooled: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Encode token chunks.

        Args:
            tokens: the result of `tokenize` (or its list of chunks).
            return_pooled: also return the pooled output.

        Returns:
            cond `[1, 77·k, D]` float32 on the CPU, and with `return_pooled` also pooled
            `[1, P]`.
        """
        chunks = tokens[self.family.name] if isinstance(tokens, Mapping) else tokens
        cond, pooled = self._encode_chunks(list(chunks))
        return (cond, pooled) if return_pooled else cond

    def encode_from_tokens_scheduled(self, tokens: Mapping[str, list[TokenChunk]] | Sequence[TokenChunk]
                                     ) -> Conditioning:
        """CONDITIONING of token chunks: `[[cond [1, 77·k, D], {"pooled_output": [1, P]}]]`."""
        cond, pooled = self.encode_from_tokens(tokens, return_pooled=True)
        return [[cond, {"pooled_output": pooled}]]

    def encode(self, text: str) -> Conditioning:
        """CONDITIONING of a prompt (CLIPTextEncode)."""
        return self.encode_from_tokens_scheduled(self.tokenize(text))

    # -- tokenisation ----------------------------------------------------------------------------

    def _tokens_of_part(self, part: str, weight: float) -> list[TokenChunk]:
        """Token groups of one piece of a weighted segment: an embedding and/or plain text."""
        groups: list[TokenChunk] = []
        if part.startswith(EMBEDDING_PREFIX):
            vectors, part = self._embedding_reference(part[len(EMBEDDING_PREFIX):])
            if vectors is not None:
                groups.append([(vector, weight) for vector in vectors])
            if not part:
                return groups
        groups.append([(token, weight) for token in self.tokenizer.encode(part)])
        return groups

    def _embedding_reference(self, reference: str) -> tuple[Tensor | None, str]:
        """Vectors `[n, D]` named at the start of `reference`, and the text after the name.

        The name ends at the first whitespace; if no file has that name, trailing commas
        (as in `embedding:style, portrait`) are tried off and handed back as text.
        """
        words = reference.strip("\n").split()
        name, leftover = (words[0], " ".join(words[1:])) if words else ("", "")
        vectors = self.load_embedding(name)
        if vectors is None:
            stripped = name.strip(",")
            if len(stripped) < len(name):
                vectors = self.load_embedding(stripped)
                leftover = f"{name[len(stripped):]} {leftover}"
        if vectors is None:
            log.warning("embedding:%s does not exist in %s, ignoring", name, [str(d) for d in self.embedding_dirs])
        return vectors, leftover

    def load_embedding(self, name: str) -> Tensor | None:
        """Textual-inversion vectors `[n, D]` of `name` from the embedding folders, or None."""
        path = find_embedding_file(name, self.embedding_dirs)
        if path is None:
            return None
        vectors = read_embedding_file(path, self.family.embedding_key, self.width)
        if vectors is not None and vectors.shape[-1] != self.width:
            log.warning("embedding %s has width %d but the text encoder has %d, ignoring",
                        path, vectors.shape[-1], self.width)
            return None
        return vectors

    def _pack_chunks(self, groups: list[TokenChunk]) -> list[TokenChunk]:
        """Pack token groups into start/end-framed chunks of `max_positions` tokens."""
        length = self.model.config.max_positions
        start, end = (self.tokenizer.start_token, 1.0), (self.tokenizer.end_token, 1.0)
        pad = (self.family.pad_token, 1.0)
        chunks: list[TokenChunk] = [[start]]
        for group in groups:
            splittable = len(group) >= MAX_WORD_LENGTH
            while group:
                current = chunks[-1]
                room = length - 1 - len(current)
                if len(group) <= room:
                    current.extend(group)
                    break
                if splittable:
                    current.extend(group[:room])
                    group = group[room:]
                current.append(end)
                current.extend([pad] * (length - len(current)))
                chunks.append([start])
        chunks[-1].append(end)
        chunks[-1].extend([pad] * (length - len(chunks[-1])))
        return chunks

    # -- encoding --------------------------------------------------------------------------------

    def _placement(self) -> tuple[torch.device, torch.dtype]:
        if self.devices is None:
            return torch.device("cpu"), torch.float32
        device = getattr(self.devices, "device", torch.device("cpu"))
        # The device manager decides: float32 on the CPU, where encoding costs little and the
        # conditioning then matches ComfyUI's exactly; the compute dtype on a GPU.
        return device, getattr(self.devices, "text_encoder_dtype", getattr(self.devices, "compute_dtype", torch.float32))

    def _layer_index(self) -> int | None:
        layer = self.family.default_layer if self.layer_idx is None else self.layer_idx
        # ComfyUI falls back to the last layer when the skip goes past the first one.
        if layer is None or abs(layer) > self.model.config.layers:
            return None
        return layer

    def _empty_chunk(self, length: int) -> TokenChunk:
        """Start, end, then padding: the reference `z_empty` of weighting."""
        pad = self.family.pad_token
        ids = [self.tokenizer.start_token, self.tokenizer.end_token] + [pad] * (length - 2)
        return [(token, 1.0) for token in ids]

    def _encode_chunks(self, chunks: list[TokenChunk]) -> tuple[Tensor, Tensor]:
        has_weights = any(weight != 1.0 for chunk in chunks for _, weight in chunk)
        length = max((len(chunk) for chunk in chunks), default=self.model.config.max_positions)
        batch = chunks + [self._empty_chunk(length)] if has_weights or not chunks else chunks
        if any(len(chunk) != length for chunk in batch):
            raise ValueError("all token chunks must have the same length")
        device, dtype = self._placement()
        with torch.inference_mode():
            if self.devices is not None and hasattr(self.devices, "load"):
                self.devices.load(self.model)
            else:
                self.model.to(device)
            apply_weight_patches(self.model, self.patches)
            ids = torch.tensor([[_placeholder(token) for token, _ in chunk] for chunk in batch],
                               dtype=torch.long, device=device)
            embeds = self.model.embed_tokens(ids, dtype)
            for row, chunk in enumerate(batch):
                for column, (token, _) in enumerate(chunk):
                    if isinstance(token, Tensor):
                        embeds[row, column] = token.to(embeds)
            out = self.model(ids, input_embeds=embeds, end_token=self.tokenizer.end_token,
                             layer_index=self._layer_index(), normalize_hidden=True)
            hidden = out.hidden_state.float().cpu()
            pooled = out.pooled[0:1].float().cpu()
            if not chunks:
                return hidden[-1:], pooled
            if has_weights:
                hidden = _apply_weights(hidden, chunks)
            return torch.cat([hidden[k : k + 1] for k in range(len(chunks))], dim=1), pooled


def _placeholder(token: Token) -> int:
    # An embedding slot needs some id for the lookup it overwrites; 0 is never the end token.
    return 0 if isinstance(token, Tensor) else int(token)


def _apply_weights(hidden: Tensor, chunks: list[TokenChunk]) -> Tensor:
    """`z = (z - z_empty)·w + z_empty` per weighted token; `hidden[-1]` is `z_empty` `[T, D]`."""
    weights = torch.tensor([[weight for _, weight in chunk] for chunk in chunks], dtype=hidden.dtype).unsqueeze(-1)
    empty = hidden[-1:]
    body = hidden[: len(chunks)]
    # Tokens of weight 1 keep their exact values ((z - e) + e can differ from z in the last bit).
    return torch.where(weights != 1.0, (body - empty) * weights + empty, body)


def _split_embedding_references(segment: str) -> list[str]:
    """Cut a segment before each ` embedding:` (the separating space or newline is dropped)."""
    parts = _EMBEDDING_REFERENCE.split(segment)
    return [part for part in parts[:1] + [EMBEDDING_PREFIX + part for part in parts[1:]] if part]


# -- textual-inversion files --------------------------------------------------------------------


def find_embedding_file(name: str, directories: Iterable[Path]) -> Path | None:
    """The first `name`, `name.safetensors`, `name.pt` or `name.bin` inside one of `directories`.

    Names that would leave their folder (`..`, absolute paths) find nothing.
    """
    for directory in directories:
        root = Path(directory).resolve()
        candidate = (root / name).resolve()
        if candidate != root and root not in candidate.parents:
            continue
        for path in (candidate, *(candidate.with_name(candidate.name + s) for s in EMBEDDING_SUFFIXES)):
            if path.is_file():
                return path
    return None


def read_embedding_file(path: Path, embedding_key: str, width: int) -> Tensor | None:
    """Vectors `[n, D]` of a textual-inversion file.

    Understands the AUTOMATIC1111 `.pt` layout (`string_to_param: {"*": [n, D]}`), single-
    tensor safetensors (`emb_params`), files holding one tensor per text encoder (`clip_l`,
    `clip_g`, ...; `embedding_key` picks one) and lists of such dicts. Pickles are read with
    `torch.load(weights_only=True)` only.
    """
    try:
        if path.suffix.lower() in (".safetensors", ".sft"):
            import safetensors.torch

            content: Any = safetensors.torch.load_file(str(path), device="cpu")
        else:
            content = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as error:
        log.warning("cannot read embedding %s: %s", path, error)
        return None
    vectors = _vectors_in(content, embedding_key, width)
    if vectors is None:
        log.warning("no embedding vectors found in %s", path)
        return None
    return vectors.detach().float().reshape(-1, vectors.shape[-1])


def _vectors_in(content: Any, embedding_key: str, width: int) -> Tensor | None:
    if isinstance(content, Tensor):
        return content
    if isinstance(content, list):
        rows = [t.reshape(-1, t.shape[-1]) for entry in content if isinstance(entry, Mapping)
                for t in entry.values() if isinstance(t, Tensor) and t.shape[-1] == width]
        return torch.cat(rows) if rows else None
    if not isinstance(content, Mapping):
        return None
    if isinstance(content.get("string_to_param"), Mapping):
        return next(iter(content["string_to_param"].values()), None)
    if isinstance(content.get(embedding_key), Tensor):
        return content[embedding_key]
    tensors = [value for value in content.values() if isinstance(value, Tensor)]
    return tensors[0] if tensors else None


# -- building from a state dict -----------------------------------------------------------------


_TOKEN_EMBEDDING = "token_embedding.weight"


def _find_text_encoder_root(keys: Iterable[str], prefix: str) -> tuple[str, bool]:
    """The key prefix where the text model starts, and whether `text_model.` must be added.

    Handles `…transformer.text_model.` (SD1), `…transformer.` without `text_model`
    (early SD1 checkpoints), `text_model.` (standalone transformers files) and OpenCLIP's
    `…model.` (SD2) or bare layout.
    """
    candidates = sorted(k for k in keys if k.startswith(prefix) and k.endswith(_TOKEN_EMBEDDING))
    if not candidates:
        raise ValueError(f"no CLIP text encoder under {prefix!r}: no '*{_TOKEN_EMBEDDING}' key")
    head = candidates[0][: -len(_TOKEN_EMBEDDING)]
    if head.endswith("text_model.embeddings."):
        return head[: -len("text_model.embeddings.")], False
    if head.endswith("embeddings."):
        return head[: -len("embeddings.")], True
    return head, False


def text_encoder_from_state_dict(sd: Mapping[str, Tensor], prefix: str = "", devices: Any = None,
                                 embedding_dirs: Iterable[str | Path] = (),
                                 tokenizer: CLIPTokenizer | None = None) -> TextEncoder:
    """Build the SD1 (CLIP-L) or SD2 (OpenCLIP-H) text encoder that `sd` holds under `prefix`.

    Args:
        sd: a checkpoint's state dict (e.g. prefix `"cond_stage_model."`) or a standalone
            text-encoder file (prefix `""`; the layout's own prefix is found from the keys).
        prefix: where to look.
        devices: `DeviceManager` or None (CPU, float32).
        embedding_dirs: folders for `embedding:name`.
        tokenizer: a tokenizer to share (one is read from the shipped vocabulary otherwise).

    Raises:
        ValueError: no text encoder under `prefix`, or its weights do not fit the layout.
    """
    root, add_text_model = _find_text_encoder_root(sd.keys(), prefix)
    weights = {key[len(root):]: sd[key] for key in sd.keys() if key.startswith(root)}
    if add_text_model:
        weights = {(key if key.startswith("text_projection") else "text_model." + key): value
                   for key, value in weights.items()}
    model = clip_text_model_from_state_dict(weights)
    config = model.config
    is_sd2 = config.layout != HF_LAYOUT or config.width == 1024
    return TextEncoder(model, tokenizer or CLIPTokenizer(), SD2_CLIP_H if is_sd2 else SD1_CLIP_L,
                       devices=devices, embedding_dirs=embedding_dirs, key_prefix=root)
