"""Prompt emphasis syntax, as ComfyUI parses it (comfy/sd1_clip.py `token_weights`)."""

from __future__ import annotations

import pytest

from diffusion.prompt_weights import parse_prompt_weights, split_top_level_groups


def _rounded(segments):
    return [(text, round(weight, 10)) for text, weight in segments]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a photo of a cat", [("a photo of a cat", 1.0)]),
        ("", []),
        ("(cat)", [("cat", 1.1)]),
        ("((cat))", [("cat", 1.21)]),
        ("(((cat)))", [("cat", 1.331)]),
        ("(cat:1.5)", [("cat", 1.5)]),
        ("(cat:0)", [("cat", 0.0)]),
        ("(cat:-0.5)", [("cat", -0.5)]),
        ("(cat:.25)", [("cat", 0.25)]),
        ("a (red:1.2) cat", [("a ", 1.0), ("red", 1.2), (" cat", 1.0)]),
        # An explicit weight replaces the enclosing groups' weight, it does not multiply it.
        ("((cat:1.5))", [("cat", 1.5)]),
        ("(a (b:0.5) c)", [("a ", 1.1), ("b", 0.5), (" c", 1.1)]),
        ("(a (b) c:2)", [("a ", 2.0), ("b", 2.2), (" c", 2.0)]),
        # A suffix that is not a number keeps the colon as text and the group at ×1.1.
        ("(time: noon)", [("time: noon", 1.1)]),
        ("(ratio 16:9)", [("ratio 16", 9.0)]),
        # The last colon decides.
        ("(a:b:1.3)", [("a:b", 1.3)]),
        # A leading colon (position 0) is not a weight.
        ("(:1.3)", [(":1.3", 1.1)]),
        # Escaped parentheses are literal and never group.
        ("\\(cat\\)", [("(cat)", 1.0)]),
        ("(\\(cat\\):1.2)", [("(cat)", 1.2)]),
        ("a \\(b (c) d\\)", [("a (b ", 1.0), ("c", 1.1), (" d)", 1.0)]),
        ("()", []),
        # Unbalanced parentheses stay text, as in ComfyUI.
        ("(cat", [("(cat", 1.0)]),
        ("cat)", [("cat)", 1.0)]),
        ("a) (b)", [("a) (b)", 1.0)]),
        ("x ((a) b", [("x ", 1.0), ("((a) b", 1.0)]),
        ("line one\n(line two:1.1)", [("line one\n", 1.0), ("line two", 1.1)]),
    ],
)
def test_weights(prompt, expected):
    assert _rounded(parse_prompt_weights(prompt)) == _rounded(expected)


def test_segments_reassemble_the_prompt_without_syntax():
    prompt = "masterpiece, (best quality:1.2), ((detailed)), a \\(small\\) house"
    text = "".join(segment for segment, _ in parse_prompt_weights(prompt))
    assert text == "masterpiece, best quality, detailed, a (small) house"


def test_top_level_groups_keep_their_parentheses():
    assert split_top_level_groups("a (b (c)) d") == ["a ", "(b (c))", " d"]


def test_outer_weight_scales_ungrouped_text():
    assert _rounded(parse_prompt_weights("a (b)", weight=2.0)) == [("a ", 2.0), ("b", 2.2)]
