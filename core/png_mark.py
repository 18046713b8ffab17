"""The mark our pictures carry: a PNG text chunk ``kvs-written-by`` naming the command that drew it.

A command may later replace a PNG of its own (``core.targets``); any other file at that path is
someone else's. The chunk sits right after the header, so reading it touches only the first bytes.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

SIGNATURE = b"\x89PNG\r\n\x1a\n"
KEYWORD = b"kvs-written-by"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def mark_png(png: bytes, writer: str) -> bytes:
    """``png`` with a ``tEXt`` chunk ``kvs-written-by=<writer>`` after its header chunk (IHDR)."""
    if not png.startswith(SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError("not a PNG: cannot mark it")
    end = 8 + 12 + struct.unpack(">I", png[8:12])[0]  # signature, then IHDR: length, type, data, CRC
    return png[:end] + _chunk(b"tEXt", KEYWORD + b"\0" + writer.encode("latin-1")) + png[end:]


def marked_by(path: Path) -> str | None:
    """The writer named by the mark of the PNG at ``path``; None for any other file (or no mark)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(8) != SIGNATURE:
                return None
            while True:
                head = handle.read(8)
                if len(head) < 8:
                    return None
                length, kind = struct.unpack(">I", head[:4])[0], head[4:]
                if kind in (b"IDAT", b"IEND") or length > 1 << 20:
                    return None
                data = handle.read(length)
                crc = handle.read(4)
                if kind == b"tEXt" and data.startswith(KEYWORD + b"\0") and crc == struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF):
                    return data[len(KEYWORD) + 1 :].decode("latin-1")
    except OSError:
        return None
