"""The CLIP byte-level BPE tokenizer (Radford et al. 2021, "Learning Transferable Visual
Models From Natural Language Supervision"; OpenAI's `clip/simple_tokenizer.py` describes the
format).

Text goes through four stages:

1. clean-up: NFC normalisation, HTML entities unescaped (twice, as CLIP does), runs of
   whitespace collapsed to one space, lower case. (CLIP also runs `ftfy.fix_text`, which is
   not available here; its NFC step is the part that changes ordinary prompts.)
2. pre-tokenisation into pieces: the special tokens, the English contractions `'s 't 're 've
   'm 'll 'd`, runs of letters, single digits, runs of other non-space characters. This is
   CLIP's regular expression `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|
   [\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+` written as a scanner over Unicode categories, so
   no third-party regex engine is needed.
3. each piece's UTF-8 bytes are mapped to printable characters (GPT-2's byte-to-unicode
   table) and the last one gets the end-of-word marker `</w>`;
4. byte-pair merges in priority order, the result looked up in the vocabulary.

The vocabulary is `diffusion/data/bpe_simple_vocab_16e6.txt.gz` (see the README beside it).
"""

from __future__ import annotations

import gzip
import html
import re
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path

DEFAULT_VOCAB_FILE = Path(__file__).resolve().parent.parent / "data" / "bpe_simple_vocab_16e6.txt.gz"
START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
END_OF_WORD = "</w>"

_MERGE_COUNT = 49152 - 256 - 2
_CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")
_WHITESPACE_RUN = re.compile(r"\s+")
_BPE_CACHE_LIMIT = 100_000


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable Unicode characters.

    Printable Latin-1 bytes map to themselves; the others are shifted to code points from 256
    up, in byte order. The insertion order of the dict (printable bytes first) is the order
    of the first 256 vocabulary entries.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {byte: chr(byte) for byte in printable}
    shifted = 0
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return table


def clean_text(text: str) -> str:
    """CLIP's `basic_clean` + `whitespace_clean` + lower case, without ftfy."""
    text = unicodedata.normalize("NFC", text)
    text = html.unescape(html.unescape(text))
    return _WHITESPACE_RUN.sub(" ", text).strip().lower()


def _char_class(char: str) -> str:
    """'L' letter, 'N' number, ' ' whitespace, '' anything else (for the pre-tokenizer)."""
    if char.isspace():
        return " "
    category = unicodedata.category(char)[0]
    return category if category in ("L", "N") else ""


def split_pieces(text: str) -> Iterator[str]:
    """Cut cleaned text into CLIP's pre-tokens (see the module docstring, stage 2)."""
    position, length = 0, len(text)
    while position < length:
        char = text[position]
        kind = _char_class(char)
        if kind == " ":
            position += 1
            continue
        special = next((s for s in (START_OF_TEXT, END_OF_TEXT) if text.startswith(s, position)), None)
        contraction = next((c for c in _CONTRACTIONS if text.startswith(c, position)), None)
        if special or contraction:
            piece = special or contraction
            yield piece
            position += len(piece)
            continue
        if kind == "N":
            yield char
            position += 1
            continue
        end = position + 1
        # A letter run is letters only; an "other" run stops at letters, numbers and spaces.
        while end < length and _char_class(text[end]) == kind and kind != "N":
            end += 1
        yield text[position:end]
        position = end


class CLIPTokenizer:
    """Text to CLIP token ids (49,408-token vocabulary, start 49406, end 49407).

    One instance is shared by every clone of a text encoder; it caches the BPE result of
    each piece it has seen, which is what makes repeated prompts cheap.
    """

    def __init__(self, vocab_file: Path | str = DEFAULT_VOCAB_FILE):
        with gzip.open(vocab_file, "rt", encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        merges = [tuple(line.split()) for line in lines[1 : _MERGE_COUNT + 1]]
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {char: byte for byte, char in self.byte_encoder.items()}
        symbols = list(self.byte_encoder.values())
        symbols += [symbol + END_OF_WORD for symbol in symbols]
        symbols += ["".join(pair) for pair in merges]
        symbols += [START_OF_TEXT, END_OF_TEXT]
        self.encoder: dict[str, int] = {symbol: index for index, symbol in enumerate(symbols)}
        self.decoder: dict[int, str] = {index: symbol for symbol, index in self.encoder.items()}
        self.merge_ranks: dict[tuple[str, str], int] = {pair: rank for rank, pair in enumerate(merges)}
        self.start_token = self.encoder[START_OF_TEXT]
        self.end_token = self.encoder[END_OF_TEXT]
        self._bpe_cache: dict[str, tuple[str, ...]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def bpe(self, piece: str) -> tuple[str, ...]:
        """Merge the byte-symbols of one pre-token, lowest merge rank first.

        Args:
            piece: a pre-token already mapped through :func:`bytes_to_unicode`.

        Returns:
            The vocabulary symbols; the last one carries `</w>`.
        """
        cached = self._bpe_cache.get(piece)
        if cached is not None:
            return cached
        word = tuple(piece[:-1]) + (piece[-1] + END_OF_WORD,)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda pair: self.merge_ranks.get(pair, _MERGE_COUNT))
            if best not in self.merge_ranks:
                break
            word = _merge_pair(word, best)
        if len(self._bpe_cache) >= _BPE_CACHE_LIMIT:
            self._bpe_cache.clear()
        self._bpe_cache[piece] = word
        return word

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without the start and end tokens."""
        ids: list[int] = []
        for piece in split_pieces(clean_text(text)):
            if piece in (START_OF_TEXT, END_OF_TEXT):
                ids.append(self.encoder[piece])
                continue
            mapped = "".join(self.byte_encoder[byte] for byte in piece.encode("utf-8"))
            ids.extend(self.encoder[symbol] for symbol in self.bpe(mapped))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids (lower case, one space where a word ended)."""
        text = "".join(self.decoder[int(token)] for token in ids)
        text = text.replace(END_OF_WORD, self.byte_encoder[ord(" ")])
        raw = bytes(self.byte_decoder[char] for char in text)
        return raw.decode("utf-8", errors="replace").strip()


def _merge_pair(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    """Replace every left-to-right occurrence of `pair` in `word` by its concatenation."""
    first, second = pair
    merged: list[str] = []
    index = 0
    while index < len(word):
        if index < len(word) - 1 and word[index] == first and word[index + 1] == second:
            merged.append(first + second)
            index += 2
        else:
            merged.append(word[index])
            index += 1
    return tuple(merged)
