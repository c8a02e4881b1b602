"""Resolve user-supplied relative names inside a trusted root folder.

Every name that arrives over HTTP (``/view``'s ``filename`` and ``subfolder``, upload
subfolders, ``/userdata`` paths, model names in prompts) goes through
:func:`resolve_inside` before it touches the file system. The rules are lexical first, so an
attack is refused the same way whether or not the target exists:

* a part is a ``/``-separated relative path; empty parts and ``.`` segments are ignored;
* refused: absolute paths, ``..`` segments, segments made only of dots and spaces (Windows
  folds ``"... "`` into ``..``), backslashes, NUL and other control characters, Windows
  drive prefixes (``C:``), and percent escapes of path syntax (``%2e``, ``%2f``, ``%5c``,
  ``%00``, ``%25`` for double encoding, overlong UTF-8 such as ``%c0%ae``, ``%uFF0E``);
* allowed: subfolders, spaces, unicode, and dots *inside* a name (``a..b.png`` is an
  ordinary file name on every OS Kiln runs on, and is not a traversal);
* finally the real path (symlinks followed) must stay inside the root, unless the caller
  trusts symlinks placed by the administrator (model folders, see ``engine/folders.py``).

Other percent escapes (``%20``) are left as literal characters: names are never URL-decoded
here, so only escapes that a later decoding step could turn into path syntax are refused.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote_to_bytes

__all__ = ["UnsafePath", "resolve_inside", "split_relative"]

_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_PERCENT_UNICODE_ESCAPE = re.compile(r"%u[0-9A-Fa-f]{4}")
_DRIVE_PREFIX = re.compile(r"^[A-Za-z]:")
_PATH_SYNTAX_BYTES = frozenset(b"./\\%:\x00")
MAX_SEGMENT_BYTES = 255  # NAME_MAX of ext4, NTFS, APFS: longer names fail in the OS instead


class UnsafePath(ValueError):
    """A user-supplied path would leave its root folder, or is malformed."""


def _refuse(part: str, reason: str) -> UnsafePath:
    return UnsafePath(f"unsafe path {part!r}: {reason}")


def _check_percent_escapes(part: str) -> None:
    if _PERCENT_UNICODE_ESCAPE.search(part):
        # IIS-style %uFF0E decodes to a fullwidth dot that some layers fold into '.'.
        raise _refuse(part, "percent-u escape")
    escapes = _PERCENT_ESCAPE.findall(part)
    if not escapes:
        return
    decoded = unquote_to_bytes("".join(escapes))
    if any(byte in _PATH_SYNTAX_BYTES for byte in decoded):
        raise _refuse(part, "percent-encoded path syntax")
    if any(byte >= 0x80 for byte in decoded):
        # High bytes only matter if a later layer decodes them; overlong forms such as
        # %c0%ae decode to '.' in lax decoders, so any non-UTF-8 sequence is refused.
        try:
            unquote_to_bytes(part).decode("utf-8")
        except UnicodeDecodeError as error:
            raise _refuse(part, "invalid percent-encoded UTF-8") from error


def split_relative(part: str) -> list[str]:
    """Split one user-supplied relative path into checked segments (raises UnsafePath)."""
    if not isinstance(part, str):
        raise UnsafePath(f"unsafe path {part!r}: not a string")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in part):
        raise _refuse(part, "control character")
    if "\\" in part:
        raise _refuse(part, "backslash")
    if part.startswith("/"):
        raise _refuse(part, "absolute path")
    _check_percent_escapes(part)
    segments = []
    for segment in part.split("/"):
        if segment in ("", "."):
            continue
        if segment.strip(". ") == "":
            raise _refuse(part, "parent-directory segment")
        if _DRIVE_PREFIX.match(segment):
            raise _refuse(part, "drive letter")
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            raise UnsafePath(f"unsafe path: a name is longer than {MAX_SEGMENT_BYTES} bytes")
        segments.append(segment)
    return segments


def resolve_inside(root: Path | str, *parts: str, allow_symlink_escape: bool = False) -> Path:
    """Join ``parts`` onto ``root`` and prove the result stays inside ``root``.

    Returns the lexical path under the resolved root (so callers can compute the subfolder
    from it). Raises :class:`UnsafePath` for any rule in the module docstring. With
    ``allow_symlink_escape`` a symlink *inside* the root may point elsewhere: the names are
    still checked, only links placed by the administrator are trusted.
    """
    real_root = Path(root).resolve()
    segments: list[str] = []
    for part in parts:
        segments.extend(split_relative(part))
    candidate = real_root.joinpath(*segments)
    if not allow_symlink_escape:
        real_candidate = candidate.resolve()
        if real_candidate != real_root and real_root not in real_candidate.parents:
            raise _refuse("/".join(parts), "resolves outside its folder")
    return candidate
