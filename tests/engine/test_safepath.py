"""engine.safepath: user-supplied names never leave their root folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.safepath import UnsafePath, resolve_inside, split_relative

TRAVERSAL_STRINGS = Path(__file__).parents[1] / "fixtures" / "traversal_strings.txt"


def attack_strings() -> list[str]:
    return TRAVERSAL_STRINGS.read_text(encoding="utf-8").splitlines()


def test_fixture_holds_at_least_sixty_distinct_attacks():
    strings = attack_strings()
    assert len(strings) >= 60
    assert len(set(strings)) == len(strings)
    assert all(strings)


@pytest.mark.parametrize("attack", attack_strings())
def test_every_attack_string_is_refused_as_a_name(tmp_path: Path, attack: str):
    with pytest.raises(UnsafePath):
        resolve_inside(tmp_path, attack)


@pytest.mark.parametrize("attack", attack_strings())
def test_every_attack_string_is_refused_as_a_subfolder(tmp_path: Path, attack: str):
    with pytest.raises(UnsafePath):
        resolve_inside(tmp_path, attack, "image.png")


@pytest.mark.parametrize("control", ["a\x00b.png", "\x00", "x\ny.png", "tab\there", "del\x7f"])
def test_control_characters_are_refused(tmp_path: Path, control: str):
    with pytest.raises(UnsafePath):
        resolve_inside(tmp_path, control)


def test_unsafe_path_is_a_value_error():
    assert issubclass(UnsafePath, ValueError)


@pytest.mark.parametrize(
    ("parts", "relative"),
    [
        (("image.png",), "image.png"),
        (("sub", "image.png"), "sub/image.png"),
        (("sub/deeper", "image.png"), "sub/deeper/image.png"),
        (("", "image.png"), "image.png"),
        (("my file (1).png",), "my file (1).png"),
        (("日本語/画像.png",), "日本語/画像.png"),
        (("a..b.png",), "a..b.png"),
        (("..hidden",), "..hidden"),
        (("file..",), "file.."),
        ((".hidden",), ".hidden"),
        (("./image.png",), "image.png"),
        (("sub//image.png",), "sub/image.png"),
        (("50%.png",), "50%.png"),
        (("name%20with%20escape.png",), "name%20with%20escape.png"),
        (("12:30 render.png",), "12:30 render.png"),
    ],
)
def test_legitimate_names_resolve_under_the_root(tmp_path: Path, parts, relative):
    resolved = resolve_inside(tmp_path, *parts)
    assert resolved == tmp_path.resolve() / relative
    assert resolved.relative_to(tmp_path.resolve()).as_posix() == relative


def test_no_parts_is_the_root_itself(tmp_path: Path):
    assert resolve_inside(tmp_path) == tmp_path.resolve()
    assert resolve_inside(tmp_path, "", ".") == tmp_path.resolve()


def test_symlink_pointing_outside_is_refused(tmp_path: Path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("x")
    os.symlink(outside, root / "escape")
    with pytest.raises(UnsafePath):
        resolve_inside(root, "escape/secret.txt")
    with pytest.raises(UnsafePath):
        resolve_inside(root, "escape")


def test_symlinked_file_pointing_outside_is_refused(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("x")
    os.symlink(tmp_path / "secret.txt", root / "innocent.png")
    with pytest.raises(UnsafePath):
        resolve_inside(root, "innocent.png")


def test_symlink_staying_inside_is_allowed(tmp_path: Path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "image.png").write_text("x")
    os.symlink(tmp_path / "real", tmp_path / "alias")
    assert resolve_inside(tmp_path, "alias/image.png") == tmp_path.resolve() / "alias" / "image.png"


def test_trusted_symlink_escape_still_checks_the_names(tmp_path: Path):
    root = tmp_path / "models"
    store = tmp_path / "big_disk"
    root.mkdir()
    store.mkdir()
    os.symlink(store, root / "linked")
    resolved = resolve_inside(root, "linked/model.safetensors", allow_symlink_escape=True)
    assert resolved == root.resolve() / "linked" / "model.safetensors"
    with pytest.raises(UnsafePath):
        resolve_inside(root, "../big_disk/model.safetensors", allow_symlink_escape=True)


def test_root_given_through_a_symlink_is_accepted(tmp_path: Path):
    (tmp_path / "real_root").mkdir()
    os.symlink(tmp_path / "real_root", tmp_path / "root_link")
    resolved = resolve_inside(tmp_path / "root_link", "a.png")
    assert resolved == (tmp_path / "real_root").resolve() / "a.png"


def test_a_name_longer_than_the_filesystem_allows_is_refused(tmp_path: Path):
    # 255 bytes is NAME_MAX on ext4/NTFS/APFS; past it the OS fails with ENAMETOOLONG.
    assert resolve_inside(tmp_path, "x" * 251 + ".png").name == "x" * 251 + ".png"
    with pytest.raises(UnsafePath, match="longer than 255 bytes"):
        resolve_inside(tmp_path, "x" * 252 + ".png")
    with pytest.raises(UnsafePath):
        resolve_inside(tmp_path, "é" * 128)  # 256 bytes in UTF-8, 128 characters


def test_split_relative_drops_empty_and_dot_segments():
    assert split_relative("a/./b//c.png") == ["a", "b", "c.png"]


def test_non_string_parts_are_refused(tmp_path: Path):
    with pytest.raises(UnsafePath):
        resolve_inside(tmp_path, b"image.png")  # type: ignore[arg-type]


PATH_PIECES = list("./\\%2eEfF5cC:aZ \x00") + ["..", "%2e", "%2f", "%5c", "%25", "%c0%ae"]
PATHISH = st.lists(st.sampled_from(PATH_PIECES), max_size=12).map("".join)


@settings(max_examples=300, deadline=None, database=None)
@given(parts=st.lists(PATHISH, max_size=3))
def test_any_input_is_refused_or_lands_inside_the_root(tmp_path_factory: pytest.TempPathFactory, parts: list[str]):
    root = tmp_path_factory.getbasetemp() / "fuzz_root"
    root.mkdir(exist_ok=True)
    try:
        resolved = resolve_inside(root, *parts)
    except UnsafePath:
        return
    real_root = root.resolve()
    assert resolved == real_root or real_root in resolved.parents
    assert ".." not in resolved.relative_to(real_root).parts
