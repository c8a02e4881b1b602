"""tools/demo_samples.py: the README's strip of demo pictures, drawn through the default workflow."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tools import demo_samples


def test_pictures_are_enlarged_three_times_and_framed_in_one_row():
    pictures = [np.full((64, 64, 3), value, dtype=np.uint8) for value in (50, 100, 150, 200)]
    strip = demo_samples.strip(pictures)
    assert strip.shape == (64 * 3 + 2 * 8, 4 * (64 * 3 + 8) + 8, 3)
    assert tuple(strip[0, 0]) == demo_samples.FRAME and tuple(strip[100, 8 + 192]) == demo_samples.FRAME
    for index, value in enumerate((50, 100, 150, 200)):
        left = 8 + index * 200
        assert (strip[8 : 8 + 192, left : left + 192] == value).all()


def test_the_tool_writes_a_png_of_its_prompts_from_the_demo_model(tmp_path):
    out = tmp_path / "samples.png"
    demo_samples.main(["--prompt", "a large red circle in the center on a blue background",
                       "--prompt", "small yellow star, top left, black background", "--out", str(out), "--threads", "1"])
    with Image.open(out) as picture:
        assert picture.size == (2 * 200 + 8, 208)
        centre = np.asarray(picture.convert("RGB"))[8 + 96, 8 + 96]
    red, green, blue = (int(channel) for channel in centre)
    assert red > 150 and green < 100 and blue < 100, centre
