"""Loading and saving image files as ComfyUI does (comfy-compat §5, §6.10, §9)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time

import numpy as np
import pytest
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from engine.safepath import UnsafePath
from nodes.image_io import LoadImage, LoadImageMask, PreviewImage, SaveImage, expand_prefix_variables


def rgb_pixels(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def write_png(path, pixels: np.ndarray, **save_options) -> None:
    """Save ``pixels`` (mode inferred by Pillow: RGB, RGBA, ...) creating folders as needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **save_options)


def png_text(path) -> dict[str, str]:
    with Image.open(path) as image:
        image.load()
        return dict(image.text)


@pytest.mark.usefixtures("node_context")
class TestLoadImageChoices:
    def test_lists_sorted_top_level_image_files_with_an_upload_button(self, folders):
        for name in ["b.png", "a.jpg", "c.webp"]:
            write_png(folders.input_dir / name, rgb_pixels(2, 2), format="PNG")
        (folders.input_dir / "notes.txt").write_text("not an image")
        write_png(folders.input_dir / "sub" / "nested.png", rgb_pixels(2, 2))
        names, options = LoadImage.INPUT_TYPES()["required"]["image"]
        assert names == ["a.jpg", "b.png", "c.webp"]
        assert options == {"image_upload": True}

    def test_mask_loader_lists_every_top_level_file(self, folders):
        write_png(folders.input_dir / "b.png", rgb_pixels(2, 2))
        (folders.input_dir / "a.txt").write_text("x")
        names, options = LoadImageMask.INPUT_TYPES()["required"]["image"]
        assert names == ["a.txt", "b.png"]
        assert options == {"image_upload": True}


@pytest.mark.usefixtures("node_context")
class TestLoadImage:
    def test_rgb_image_gives_its_pixels_and_an_empty_64px_mask(self, folders):
        pixels = rgb_pixels(3, 5)
        write_png(folders.input_dir / "x.png", pixels)
        image, mask = LoadImage().load_image("x.png")
        assert image.dtype == torch.float32 and image.shape == (1, 3, 5, 3)
        assert torch.equal(image[0], torch.from_numpy(pixels.astype(np.float32) / 255.0))
        assert torch.equal(mask, torch.zeros(1, 64, 64))

    def test_mask_is_one_minus_alpha(self, folders):
        rgba = np.dstack([rgb_pixels(4, 4), np.arange(16, dtype=np.uint8).reshape(4, 4) * 17])
        write_png(folders.input_dir / "a.png", rgba)
        image, mask = LoadImage().load_image("a.png")
        assert image.shape == (1, 4, 4, 3)
        assert torch.allclose(mask[0], 1.0 - torch.from_numpy(rgba[..., 3].astype(np.float32) / 255.0))

    def test_palette_transparency_becomes_the_mask(self, folders):
        palette_image = Image.new("P", (2, 1))
        palette_image.putpalette([255, 0, 0, 0, 255, 0])
        palette_image.putpixel((1, 0), 1)
        palette_image.info["transparency"] = 0
        palette_image.save(folders.input_dir / "p.png", transparency=0)
        _, mask = LoadImage().load_image("p.png")
        assert torch.equal(mask, torch.tensor([[[1.0, 0.0]]]))

    def test_exif_orientation_is_applied(self, folders):
        pixels = rgb_pixels(2, 3)
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90 clockwise to display"
        Image.fromarray(pixels).save(folders.input_dir / "o.png", exif=exif)
        image, _ = LoadImage().load_image("o.png")
        expected = np.rot90(pixels, k=-1).astype(np.float32) / 255.0
        assert torch.equal(image[0], torch.from_numpy(expected.copy()))

    def test_frames_become_a_batch_without_frames_of_another_size(self, folders):
        frames = [Image.fromarray(rgb_pixels(4, 6, seed)) for seed in range(3)]
        odd_size = Image.fromarray(rgb_pixels(5, 5, 9))
        frames[0].save(folders.input_dir / "pages.tiff", save_all=True, append_images=[frames[1], odd_size, frames[2]])
        image, mask = LoadImage().load_image("pages.tiff")
        assert image.shape == (3, 4, 6, 3)
        assert torch.equal(image[2], torch.from_numpy(np.asarray(frames[2], dtype=np.float32) / 255.0))
        assert mask.shape == (3, 64, 64)

    def test_32_bit_integer_images_are_scaled_down_by_255(self, folders):
        Image.fromarray(np.full((2, 2), 100 * 255, dtype=np.int32)).save(folders.input_dir / "deep.tiff")
        image, _ = LoadImage().load_image("deep.tiff")
        assert torch.allclose(image, torch.full((1, 2, 2, 3), 100 / 255))

    def test_names_may_carry_a_subfolder_or_a_folder_annotation(self, folders):
        write_png(folders.input_dir / "sub" / "s.png", rgb_pixels(2, 2, 1))
        write_png(folders.output_dir / "o.png", rgb_pixels(2, 3, 2))
        assert LoadImage().load_image("sub/s.png")[0].shape == (1, 2, 2, 3)
        assert LoadImage().load_image("o.png [output]")[0].shape == (1, 2, 3, 3)

    def test_is_changed_is_the_sha256_of_the_file(self, folders):
        path = folders.input_dir / "x.png"
        write_png(path, rgb_pixels(2, 2, 1))
        first = LoadImage.IS_CHANGED(image="x.png")
        assert first == hashlib.sha256(path.read_bytes()).hexdigest()
        write_png(path, rgb_pixels(2, 2, 2))
        assert LoadImage.IS_CHANGED(image="x.png") != first

    def test_validate_inputs_accepts_existing_files_anywhere_inside_the_folders(self, folders):
        write_png(folders.input_dir / "sub" / "s.png", rgb_pixels(2, 2))
        write_png(folders.temp_dir / "t.png", rgb_pixels(2, 2))
        assert LoadImage.VALIDATE_INPUTS(image="sub/s.png") is True
        assert LoadImage.VALIDATE_INPUTS(image="t.png [temp]") is True
        assert LoadImageMask.VALIDATE_INPUTS(image="sub/s.png") is True

    @pytest.mark.parametrize("name", ["missing.png", "../kiln/input/x.png", "/etc/passwd", "t.png [output]"])
    def test_validate_inputs_refuses_missing_and_escaping_names(self, folders, name):
        write_png(folders.input_dir / "x.png", rgb_pixels(2, 2))
        write_png(folders.temp_dir / "t.png", rgb_pixels(2, 2))
        assert LoadImage.VALIDATE_INPUTS(image=name) == f"Invalid image file: {name}"
        assert LoadImageMask.VALIDATE_INPUTS(image=name) == f"Invalid image file: {name}"


@pytest.mark.usefixtures("node_context")
class TestLoadImageMask:
    @pytest.fixture
    def rgba(self, folders) -> np.ndarray:
        pixels = np.dstack([rgb_pixels(3, 4), np.arange(12, dtype=np.uint8).reshape(3, 4) * 20])
        write_png(folders.input_dir / "m.png", pixels)
        return pixels

    @pytest.mark.parametrize("index, channel", [(0, "red"), (1, "green"), (2, "blue")])
    def test_colour_channels_are_taken_as_they_are(self, rgba, index, channel):
        (mask,) = LoadImageMask().load_image("m.png", channel)
        assert torch.equal(mask, torch.from_numpy(rgba[None, ..., index].astype(np.float32) / 255.0))

    def test_alpha_is_inverted(self, rgba):
        (mask,) = LoadImageMask().load_image("m.png", "alpha")
        assert torch.allclose(mask, 1.0 - torch.from_numpy(rgba[None, ..., 3].astype(np.float32) / 255.0))

    def test_alpha_of_an_opaque_image_masks_nothing(self, folders):
        write_png(folders.input_dir / "rgb.png", rgb_pixels(2, 3))
        (mask,) = LoadImageMask().load_image("rgb.png", "alpha")
        assert torch.equal(mask, torch.zeros(1, 2, 3))

    def test_is_changed_follows_the_file_content(self, folders, rgba):
        digest = hashlib.sha256((folders.input_dir / "m.png").read_bytes()).hexdigest()
        assert LoadImageMask.IS_CHANGED(image="m.png", channel="red") == digest


def image_batch(batch: int = 2, height: int = 3, width: int = 4) -> torch.Tensor:
    return torch.rand(batch, height, width, 3, generator=torch.Generator().manual_seed(batch))


def expected_png_bytes(image: torch.Tensor, metadata: PngInfo | None, compress_level: int) -> bytes:
    """What Pillow writes for the 8-bit (clipped, truncated) image: the reference for saved files."""
    stream = io.BytesIO()
    pixels = np.clip(255.0 * image.numpy(), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(stream, format="PNG", pnginfo=metadata, compress_level=compress_level)
    return stream.getvalue()


@pytest.mark.usefixtures("node_context")
class TestSaveImage:
    prompt = {"3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI"}}}
    workflow = {"nodes": [], "links": [], "version": 0.4, "extra": {"title": "café"}}

    def test_writes_counted_pngs_and_reports_them_for_the_ui(self, folders):
        result = SaveImage().save_images(image_batch(2), "ComfyUI")
        assert result == {
            "ui": {
                "images": [
                    {"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"},
                    {"filename": "ComfyUI_00002_.png", "subfolder": "", "type": "output"},
                ]
            }
        }
        written = sorted(path.name for path in folders.output_dir.iterdir())
        assert written == ["ComfyUI_00001_.png", "ComfyUI_00002_.png"]

    def test_counter_continues_after_the_highest_existing_file_of_the_prefix(self, folders):
        for name in ["ComfyUI_00007_.png", "ComfyUI_00003_.png", "Other_00042_.png", "ComfyUI_temp_abcde_00050_.png"]:
            (folders.output_dir / name).write_bytes(b"")
        result = SaveImage().save_images(image_batch(1), "ComfyUI")
        assert result["ui"]["images"][0]["filename"] == "ComfyUI_00008_.png"

    def test_file_is_the_png_of_the_8bit_image_at_compress_level_4_with_metadata_chunks(self, folders):
        images = image_batch(1)
        SaveImage().save_images(images, "meta", prompt=self.prompt, extra_pnginfo={"workflow": self.workflow})
        metadata = PngInfo()
        metadata.add_text("prompt", json.dumps(self.prompt))
        metadata.add_text("workflow", json.dumps(self.workflow))
        path = folders.output_dir / "meta_00001_.png"
        assert path.read_bytes() == expected_png_bytes(images[0], metadata, compress_level=4)
        text = png_text(path)
        assert json.loads(text["prompt"]) == self.prompt
        assert json.loads(text["workflow"]) == self.workflow

    def test_every_extra_pnginfo_key_gets_its_own_chunk(self, folders):
        SaveImage().save_images(image_batch(1), "keys", prompt=None, extra_pnginfo={"workflow": {}, "note": "hi"})
        assert png_text(folders.output_dir / "keys_00001_.png") == {"workflow": "{}", "note": '"hi"'}

    def test_disable_metadata_writes_no_text_chunks(self, folders, server_options):
        server_options["disable_metadata"] = True
        SaveImage().save_images(image_batch(1), "plain", prompt=self.prompt, extra_pnginfo={"workflow": self.workflow})
        assert png_text(folders.output_dir / "plain_00001_.png") == {}

    def test_prefix_subfolders_are_created_and_reported(self, folders):
        result = SaveImage().save_images(image_batch(1), "renders/day 1/cat")
        (entry,) = result["ui"]["images"]
        assert entry == {"filename": "cat_00001_.png", "subfolder": "renders/day 1", "type": "output"}
        assert (folders.output_dir / "renders" / "day 1" / "cat_00001_.png").is_file()

    @pytest.mark.parametrize("prefix", ["../escaped", "a/../../escaped", "/tmp/escaped"])
    def test_prefix_that_leaves_the_output_folder_is_an_error(self, folders, prefix):
        with pytest.raises(UnsafePath, match="outside the output folder"):
            SaveImage().save_images(image_batch(1), prefix)
        assert not list(folders.base_dir.parent.rglob("escaped*"))

    def test_size_and_batch_number_variables(self, folders):
        result = SaveImage().save_images(image_batch(2, height=3, width=4), "%width%x%height%_b%batch_num%")
        names = [entry["filename"] for entry in result["ui"]["images"]]
        assert names == ["4x3_b0_00001_.png", "4x3_b1_00002_.png"]

    def test_date_variables_use_local_time_with_two_digits(self):
        moment = time.struct_time((2024, 3, 7, 9, 5, 2, 3, 67, 0))
        expanded = expand_prefix_variables("%year%-%month%-%day% %hour%:%minute%:%second%", 1, 1, moment)
        assert expanded == "2024-03-07 09:05:02"

    def test_out_of_range_values_are_clipped(self, folders):
        images = torch.tensor([[[[-0.5, 0.5, 1.5]]]])
        SaveImage().save_images(images, "clip")
        with Image.open(folders.output_dir / "clip_00001_.png") as saved:
            assert saved.getpixel((0, 0)) == (0, 127, 255)

    def test_a_failed_write_leaves_no_file_behind(self, folders, monkeypatch):
        seen_while_writing = []

        def failing_save(image, stream, **options):
            seen_while_writing.extend(path.name for path in folders.output_dir.iterdir() if path.suffix == ".png")
            stream.write(b"\x89PNG half")
            raise OSError("disk full")

        monkeypatch.setattr(Image.Image, "save", failing_save)
        with pytest.raises(OSError, match="disk full"):
            SaveImage().save_images(image_batch(1), "broken")
        assert seen_while_writing == []
        assert list(folders.output_dir.iterdir()) == []

    def test_output_dir_is_known_to_subclasses_as_in_comfyui(self, folders):
        assert SaveImage().output_dir == folders.output_dir
        assert PreviewImage().output_dir == folders.temp_dir

    def test_plugin_subclass_may_point_output_dir_elsewhere(self, folders, tmp_path):
        class SaveToElsewhere(SaveImage):
            def __init__(self):
                super().__init__()
                self.output_dir = tmp_path / "elsewhere"

        SaveToElsewhere().save_images(image_batch(1), "x")
        assert (tmp_path / "elsewhere" / "x_00001_.png").is_file()


@pytest.mark.usefixtures("node_context")
class TestPreviewImage:
    def test_writes_to_temp_with_a_random_prefix_and_compress_level_1(self, folders):
        images = image_batch(1)
        prompt = {"1": {"class_type": "PreviewImage", "inputs": {}}}
        result = PreviewImage().save_images(images, prompt=prompt)
        (entry,) = result["ui"]["images"]
        assert entry["type"] == "temp" and entry["subfolder"] == ""
        assert re.fullmatch(r"ComfyUI_temp_[a-z]{5}_00001_\.png", entry["filename"])
        metadata = PngInfo()
        metadata.add_text("prompt", json.dumps(prompt))
        written = (folders.temp_dir / entry["filename"]).read_bytes()
        assert written == expected_png_bytes(images[0], metadata, compress_level=1)
        assert list(folders.output_dir.iterdir()) == []

    def test_each_node_instance_gets_its_own_prefix_and_keeps_it(self):
        first = PreviewImage()
        assert re.fullmatch(r"_temp_[a-z]{5}", first.prefix_append)
        names = [first.save_images(image_batch(1))["ui"]["images"][0]["filename"] for _ in range(2)]
        assert names[0].rsplit("_", 2)[0] == names[1].rsplit("_", 2)[0]
        assert names[1].endswith("_00002_.png")


class TestThroughTheExecutor:
    """LoadImage -> SaveImage as a prompt: validation, hidden inputs and the ui result (§6.10)."""

    class Events:
        def __init__(self) -> None:
            self.sent: list[tuple[str, dict]] = []

        def send(self, event: str, data: dict) -> None:
            self.sent.append((event, data))

        def send_preview(self, preview, meta: dict) -> None:
            pass

    def test_saved_png_carries_the_prompt_and_the_workflow(self, folders, node_context):
        from engine.context import InterruptFlag
        from engine.executor import Executor
        from engine.registry import NodeRegistry
        from engine.validation import validate_prompt
        from nodes import image_io

        registry = NodeRegistry()
        registry.add_module(image_io.NODE_CLASS_MAPPINGS, image_io.NODE_DISPLAY_NAME_MAPPINGS, "nodes.image_io", True)
        pixels = rgb_pixels(4, 6)
        write_png(folders.input_dir / "sub" / "in.png", pixels)
        prompt = {
            "1": {"class_type": "LoadImage", "inputs": {"image": "sub/in.png"}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "run/out"}},
        }
        workflow = {"last_node_id": 2, "nodes": []}
        validation = validate_prompt(registry, prompt)
        assert validation.ok, validation.node_errors
        executor = Executor(registry, resources=node_context.resources)
        events = self.Events()
        result = executor.execute(
            prompt, "p1", {"extra_pnginfo": {"workflow": workflow}}, validation.outputs, events, InterruptFlag()
        )
        assert result.status_str == "success", result.messages
        saved = {"filename": "out_00001_.png", "subfolder": "run", "type": "output"}
        assert result.outputs["2"] == {"images": [saved]}
        path = folders.output_dir / "run" / "out_00001_.png"
        assert json.loads(png_text(path)["prompt"]) == prompt
        assert json.loads(png_text(path)["workflow"]) == workflow
        with Image.open(path) as written:
            assert np.array_equal(np.asarray(written), pixels)


def test_save_image_created_outside_a_context_finds_its_folder_when_run(folders):
    from engine.context import InterruptFlag, NodeContext, ProgressReporter, use_context

    node = SaveImage()
    assert node.output_dir is None
    interrupt = InterruptFlag()
    reporter = ProgressReporter(lambda *report: None, interrupt)
    context = NodeContext("p", "1", "1", reporter, interrupt, {"folders": folders})
    with use_context(context):
        node.save_images(image_batch(1), "late")
    assert (folders.output_dir / "late_00001_.png").is_file()
