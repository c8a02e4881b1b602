"""Natural-language captions for demo scenes, in varied phrasings.

The model should answer "a large red circle in the top left on a blue background" as well as
"small yellow star, center, black background", so training captions mix several templates,
synonyms and word orders; the evaluation prompts use one plain template (``canonical_caption``).
"""

from __future__ import annotations

import random

# Phrases that place something at a named position: prepositional and bare (after a comma).
POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "top left": ("in the top left", "in the top left corner", "at the upper left"),
    "top": ("at the top", "at the top center", "near the top"),
    "top right": ("in the top right", "in the top right corner", "at the upper right"),
    "left": ("on the left", "at the left", "on the left side"),
    "center": ("in the center", "in the middle", "at the center"),
    "right": ("on the right", "at the right", "on the right side"),
    "bottom left": ("in the bottom left", "in the bottom left corner", "at the lower left"),
    "bottom": ("at the bottom", "at the bottom center", "near the bottom"),
    "bottom right": ("in the bottom right", "in the bottom right corner", "at the lower right"),
}
POSITION_WORDS: dict[str, tuple[str, ...]] = {
    "top left": ("top left", "upper left"),
    "top": ("top", "top center"),
    "top right": ("top right", "upper right"),
    "left": ("left", "left side"),
    "center": ("center", "middle"),
    "right": ("right", "right side"),
    "bottom left": ("bottom left", "lower left"),
    "bottom": ("bottom", "bottom center"),
    "bottom right": ("bottom right", "lower right"),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {"small": ("small", "little"), "large": ("large", "big")}

SINGLE_TEMPLATES = (
    "a {size} {colour} {shape} {where} on a {background}",
    "{size} {colour} {shape}, {place}, {background}",
    "{background}, {size} {colour} {shape} {where}",
    "a {colour} {shape} {where}, {size}, on a {background}",
    "a picture of a {size} {colour} {shape} {where}, {background}",
    "{size} {shape} in {colour} {where} against a {background}",
    "a {background} with a {size} {colour} {shape} {where}",
)
PAIR_TEMPLATES = (
    "{first} {first_where} and {second} {second_where} on a {background}",
    "{first}, {first_place}; {second}, {second_place}; {background}",
    "a {background} with {first} {first_where} and {second} {second_where}",
)


def background_phrase(background: tuple[str, ...], rng: random.Random | None = None) -> str:
    """``"blue background"``; a two-tone one names its top colour first (``"blue and white background"``)."""
    if len(background) == 1:
        return f"{background[0]} background"
    top, bottom = background
    if rng is not None and rng.random() < 0.5:
        return f"{top} over {bottom} background"
    return f"{top} and {bottom} background"


def _pick(rng: random.Random, options: tuple[str, ...]) -> str:
    return options[rng.randrange(len(options))]


def shape_caption(rng: random.Random, shape: str, colour: str, size: str, position: str, background) -> str:
    """One shape in a randomly chosen phrasing."""
    template = _pick(rng, SINGLE_TEMPLATES)
    return template.format(
        size=_pick(rng, SIZE_WORDS[size]), colour=colour, shape=shape,
        where=_pick(rng, POSITION_PHRASES[position]), place=_pick(rng, POSITION_WORDS[position]),
        background=background_phrase(background, rng),
    )


def pair_caption(rng: random.Random, first, second, background) -> str:
    """Two shapes (``(shape, colour, size, position)`` tuples) in a randomly chosen phrasing."""

    def noun(item) -> str:
        shape, colour, size, _ = item
        return f"a {_pick(rng, SIZE_WORDS[size])} {colour} {shape}"

    return _pick(rng, PAIR_TEMPLATES).format(
        first=noun(first), second=noun(second),
        first_where=_pick(rng, POSITION_PHRASES[first[3]]), second_where=_pick(rng, POSITION_PHRASES[second[3]]),
        first_place=_pick(rng, POSITION_WORDS[first[3]]), second_place=_pick(rng, POSITION_WORDS[second[3]]),
        background=background_phrase(background, rng),
    )


def canonical_caption(shape: str, colour: str, size: str, position: str, background: tuple[str, ...]) -> str:
    """The evaluation phrasing: ``"a large red circle in the top left on a blue background"``."""
    return f"a {size} {colour} {shape} {POSITION_PHRASES[position][0]} on a {background_phrase(background)}"


def layout_free_caption(shapes: list[tuple[str, str]], background: tuple[str, ...]) -> str:
    """What is drawn without where or how big (``"a red star on a blue background"``): the prompt
    for a ControlNet, whose hint alone gives the layout. ``shapes``: ``(shape, colour)`` pairs."""
    nouns = " and ".join(f"a {colour} {shape}" for shape, colour in shapes)
    return f"{nouns} on a {background_phrase(background)}"
