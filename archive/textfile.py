"""Text files as people publish them: UTF-8 with or without a BOM, else Windows-1252, else
Latin-1; gzip-compressed or not; CRLF or LF. Streamed: memory stays flat whatever the size."""
from __future__ import annotations

import codecs
import gzip
import io
import zlib
from pathlib import Path

from .errors import SheetUnreadable

CHUNK = 1 << 20
#: Tried in order; Latin-1 decodes any byte, so a file always gets one (recorded per sheet).
ENCODINGS = ("utf-8", "cp1252", "latin-1")


def _raw(path: Path):
    """The sheet's bytes as a stream (gunzipped when it is gzip) and the file under it."""
    f = open(path, "rb")
    if f.read(2) == b"\x1f\x8b":
        f.seek(0)
        return gzip.GzipFile(fileobj=f), f
    f.seek(0)
    return f, f


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` (BOM), ``utf-8``, else ``cp1252``, else ``latin-1``: the first that decodes
    the whole sheet, read in chunks. Raises SheetUnreadable for a damaged gzip."""
    compressed = False
    try:
        with open(path, "rb") as f:
            compressed = f.read(2) == b"\x1f\x8b"
        for encoding in ENCODINGS:
            stream, base = _raw(path)
            with base:
                decoder = codecs.getincrementaldecoder(encoding)()
                first = b""
                try:
                    while chunk := stream.read(CHUNK):
                        first = first or chunk[:3]
                        decoder.decode(chunk)
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    continue
            if encoding == "utf-8" and first.startswith(codecs.BOM_UTF8):
                return "utf-8-sig"
            return encoding
    except (OSError, EOFError, zlib.error) as e:
        what = "gzip file" if compressed else "file"
        raise SheetUnreadable("bad_sheet", f"{path.name} cannot be read as a {what} ({e}); "
                              "copy the sheet again from its source") from None
    raise AssertionError("latin-1 decodes any byte")  # pragma: no cover


def open_text(path: Path, encoding: str):
    """The sheet as text, streamed, newlines kept for the csv module (CRLF and LF alike)."""
    stream, base = _raw(path)
    return io.TextIOWrapper(stream, encoding=encoding, newline=""), base


