"""Prompt emphasis syntax: `(text)`, `(text:1.3)`, nesting and `\\(` `\\)` escapes.

The grammar is the one ComfyUI's prompt box uses (itself following the AUTOMATIC1111 web
UI's convention):

* `(text)` multiplies the weight of `text` by 1.1; nested groups multiply again, so
  `((text))` is 1.21.
* `(text:w)` sets the weight of `text` to `w` (it replaces, it does not multiply, the weight
  of the enclosing groups). A `:` suffix that is not a number leaves the group at ×1.1 and
  keeps the colon in the text.
* `\\(` and `\\)` are literal parentheses and take no part in grouping; they reach the
  tokenizer without the backslash.
* An unmatched `)` drives the nesting level below zero, after which the parser treats the
  rest of the text as ordinary characters until the level is back at zero; an unclosed `(`
  group is text with its parenthesis kept. These corner cases are kept as ComfyUI has them,
  so a prompt gives the same conditioning in both.
"""

from __future__ import annotations

# Private-use stand-ins keep escaped parentheses out of the grouping pass; they are turned
# back into plain parentheses before tokenisation.
_ESCAPED_OPEN = "\0\2"
_ESCAPED_CLOSE = "\0\1"

EMPHASIS = 1.1


def escape_parentheses(text: str) -> str:
    """Replace `\\(` and `\\)` by placeholders that the grouping pass does not see."""
    return text.replace("\\)", _ESCAPED_CLOSE).replace("\\(", _ESCAPED_OPEN)


def unescape_parentheses(text: str) -> str:
    """Turn the placeholders of :func:`escape_parentheses` into literal `(` and `)`."""
    return text.replace(_ESCAPED_CLOSE, ")").replace(_ESCAPED_OPEN, "(")


def split_top_level_groups(text: str) -> list[str]:
    """Cut `text` into top-level `( ... )` groups (parentheses kept) and the text between.

    `"a (b (c)) d"` -> `["a ", "(b (c))", " d"]`.
    """
    pieces: list[str] = []
    current = ""
    depth = 0
    for char in text:
        if char == "(":
            if depth == 0:
                if current:
                    pieces.append(current)
                current = ""
            current += char
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                pieces.append(current + char)
                current = ""
            else:
                current += char
        else:
            current += char
    if current:
        pieces.append(current)
    return pieces


def _weighted_segments(text: str, weight: float) -> list[tuple[str, float]]:
    segments: list[tuple[str, float]] = []
    for piece in split_top_level_groups(text):
        if len(piece) < 2 or not (piece[0] == "(" and piece[-1] == ")"):
            segments.append((piece, weight))
            continue
        inner = piece[1:-1]
        inner_weight = weight * EMPHASIS
        colon = inner.rfind(":")
        if colon > 0:
            try:
                inner_weight = float(inner[colon + 1 :])
                inner = inner[:colon]
            except ValueError:
                pass
        segments.extend(_weighted_segments(inner, inner_weight))
    return segments


def parse_prompt_weights(text: str, weight: float = 1.0) -> list[tuple[str, float]]:
    """Split a prompt into `(text, weight)` segments in reading order.

    Args:
        text: the prompt as typed.
        weight: the weight of text outside any group.

    Returns:
        Segments whose texts, concatenated, are the prompt without the grouping parentheses
        and weight suffixes, with escaped parentheses made literal.
        `parse_prompt_weights("a (b:1.5) \\\\(c\\\\)")` == `[("a ", 1.0), ("b", 1.5), (" (c)", 1.0)]`.
    """
    return [
        (unescape_parentheses(segment), segment_weight)
        for segment, segment_weight in _weighted_segments(escape_parentheses(text), weight)
    ]
