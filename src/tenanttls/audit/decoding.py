"""Decoding of export files into text.

Windows PowerShell 5.1 writes ``>`` redirections and ``Out-File`` as UTF-16 LE with a
byte order mark; PowerShell 7 writes UTF-8 without one; ``Set-Content`` and some
editors add a UTF-8 BOM. A file that is none of these is rejected with the byte
offset, because guessing a code page could silently change names.
"""

from __future__ import annotations

import codecs

from tenanttls.errors import ExportError

# Longest first, so that the UTF-32 LE mark is not taken for UTF-16 LE.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_export(data: bytes, path: str) -> tuple[str, str]:
    """Return ``(text, encoding)`` for the bytes of an export file.

    Raises `ExportError` naming `path` and the line of the first invalid byte.
    """
    encoding, body = _detect_encoding(data)
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as error:
        line = body[: error.start].count(b"\n") + 1 if encoding == "utf-8" else None
        where = f"{path}:{line}" if line else path
        raise ExportError(
            f"{where}: the file is not valid {encoding.upper()} at byte {error.start}"
            f"{' (it may be truncated)' if error.start >= len(body) - 3 else ''}; "
            "export it again with 'Out-File -Encoding utf8'",
            path=path,
            line=line,
        ) from error

    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding


def _detect_encoding(data: bytes) -> tuple[str, bytes]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, data[len(bom) :]

    # UTF-16 without a mark: every other byte of ASCII text is zero.
    sample = data[:200]
    if len(sample) >= 4 and sample.count(0) * 3 >= len(sample):
        return ("utf-16-le" if sample[1] == 0 else "utf-16-be"), data
    return "utf-8", data
