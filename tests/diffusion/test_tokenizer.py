"""The CLIP tokenizer: same ids as transformers' CLIPTokenizer on the shipped vocabulary."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest
import transformers

from diffusion.models.tokenizer import (
    DEFAULT_VOCAB_FILE,
    CLIPTokenizer,
    bytes_to_unicode,
    clean_text,
    split_pieces,
)

PROMPTS = [
    "a photo of a cat",
    "A Photo Of A CAT",
    "masterpiece, best quality, 1girl, solo, looking at viewer, (smile:1.2)",
    "The quick brown fox jumps over the lazy dog. 12345 67.89 3/4 -7e10",
    "don't you'll we've they're I'm she'd it's O'Neil ''quoted''",
    "  multiple   spaces\tand\nnewlines\r\n here  ",
    "punctuation!!! ??? ... --- ;; :: @#$%^&*_+=~`|<>[]{}",
    "café naïve façade résumé Ångström straße",
    "日本語のテキスト 中文 한국어 Ελληνικά русский",
    "emoji 🎉🔥 and symbols ©®™ ½ ² ⅻ",
    "e\u0301 composed by NFC",
    "<|startoftext|>special<|endoftext|>",
    "a very long prompt " * 40,
    "embedding_name_with_underscores and-hyphens and.dots",
    "",
]


def _write_hf_vocabulary(directory: Path) -> None:
    """vocab.json and merges.txt in the transformers layout, derived from the BPE file.

    The order follows OpenAI's `simple_tokenizer.py`: byte symbols, the same with `</w>`,
    the merged pairs, then the two special tokens.
    """
    with gzip.open(DEFAULT_VOCAB_FILE, "rt", encoding="utf-8") as handle:
        merges = handle.read().split("\n")[1 : 49152 - 256 - 2 + 1]
    byte_symbols = list(bytes_to_unicode().values())
    symbols = byte_symbols + [s + "</w>" for s in byte_symbols]
    symbols += ["".join(line.split()) for line in merges] + ["<|startoftext|>", "<|endoftext|>"]
    (directory / "vocab.json").write_text(json.dumps({s: i for i, s in enumerate(symbols)}), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def tokenizer() -> CLIPTokenizer:
    return CLIPTokenizer()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    directory = tmp_path_factory.mktemp("clip_vocab")
    _write_hf_vocabulary(directory)
    return transformers.CLIPTokenizer.from_pretrained(str(directory))


def test_shipped_vocabulary_is_the_documented_file():
    digest = hashlib.sha256(DEFAULT_VOCAB_FILE.read_bytes()).hexdigest()
    assert digest == "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"


def test_vocabulary_size_and_special_tokens(tokenizer):
    assert tokenizer.vocab_size == 49408
    assert (tokenizer.start_token, tokenizer.end_token) == (49406, 49407)


def test_known_ids_of_openai_clip(tokenizer):
    # Ids published with CLIP / Stable Diffusion examples: "a photo of a cat".
    assert tokenizer.encode("a photo of a cat") == [320, 1125, 539, 320, 2368]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_ids_match_transformers(tokenizer, reference, prompt):
    expected = reference(prompt, add_special_tokens=False)["input_ids"]
    assert tokenizer.encode(prompt) == expected


def test_clean_text_unescapes_html_and_collapses_whitespace():
    assert clean_text("  Fish &amp;amp; Chips\t\n&lt;3  ") == "fish & chips <3"


def test_pre_tokenizer_splits_contractions_letters_digits_and_symbols():
    assert list(split_pieces("it's 2024!! o'neil")) == ["it", "'s", "2", "0", "2", "4", "!!", "o", "'", "neil"]


def test_decode_inverts_encode_on_clean_text(tokenizer):
    text = "a photo of a café, 42 🎉"
    assert tokenizer.decode(tokenizer.encode(text)) == "a photo of a café , 4 2 🎉"
