"""A minimal reader of plain FITS files (images and binary tables with fixed-size columns).

APOGEE aspcapStar/apStar files are plain FITS: 2880-byte blocks, 80-character header cards,
big-endian images and one binary table. Building astropy's table objects costs about 40 ms per
aspcapStar file (72 columns); reading the same bytes with numpy costs well under 1 ms. This module
does only that and raises :class:`Unsupported` for anything else (compressed or scaled data,
variable-length or bit columns, random groups), which the caller hands to astropy. It mimics the
small part of astropy's HDUList interface that :mod:`.fits` uses.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

__all__ = ["RawFits", "Unsupported"]

BLOCK = 2880
CARD = 80
_BITPIX = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_TFORM = re.compile(r"^\s*(\d*)([LBIJKEDA])\s*$")
_CODES = {"L": "i1", "B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}


class Unsupported(Exception):
    """A FITS feature this reader does not handle; use astropy instead."""


def _value(text: str):
    text = text.split("/", 1)[0].strip() if not text.lstrip().startswith("'") else text.strip()
    if text.startswith("'"):
        end, i = None, 1
        while i < len(text):  # '' is an escaped quote inside a string
            if text[i] == "'":
                if i + 1 < len(text) and text[i + 1] == "'":
                    i += 2
                    continue
                end = i
                break
            i += 1
        if end is None:
            raise Unsupported("unterminated string")
        return text[1:end].replace("''", "'").rstrip()
    if text in ("T", "F"):
        return text == "T"
    for cast in (int, float):
        try:
            return cast(text.replace("D", "E") if cast is float else text)
        except ValueError:
            pass
    return text


def _header(buf: bytes, start: int) -> tuple[dict, int]:
    """Parse the header starting at byte ``start``; return (keywords, data start)."""
    head, pos = {}, start
    while True:
        if pos + BLOCK > len(buf):
            raise OSError("File may have been truncated: the header has no END card")
        block = buf[pos:pos + BLOCK].decode("ascii", errors="replace")
        pos += BLOCK
        for i in range(0, BLOCK, CARD):
            card = block[i:i + CARD]
            key = card[:8].strip()
            if key == "END":
                return head, pos
            if card[8:10] == "= " and key not in head:
                head[key] = _value(card[10:])


class _Columns:
    def __init__(self, names):
        self.names = names


class _Table:
    """The rows of a binary table: ``field(name)`` and ``len``, strings decoded."""

    def __init__(self, rows: np.ndarray, names: list):
        self._rows, self.columns = rows, _Columns(names)

    def __len__(self):
        return len(self._rows)

    def field(self, name):
        col = self._rows[name]
        if col.dtype.kind == "S":
            return np.char.decode(col, "ascii").astype(str)
        return col.astype(col.dtype.newbyteorder("="))


class _HDU:
    def __init__(self, buf: bytes, header: dict, offset: int, size: int):
        self.header, self._buf, self._offset, self._size = header, buf, offset, size
        self._data = None

    @property
    def columns(self):
        return self.data.columns

    @property
    def data(self):
        if self._data is None and self._size:
            self._data = self._read()
        return self._data

    def _read(self):
        h = self.header
        if h.get("XTENSION") == "BINTABLE":
            return self._table()
        if h.get("BSCALE", 1) != 1 or h.get("BZERO", 0) != 0 or h.get("BITPIX") not in _BITPIX:
            raise Unsupported("scaled or unusual image")
        shape = tuple(h[f"NAXIS{i}"] for i in range(h["NAXIS"], 0, -1))
        arr = np.frombuffer(self._buf, dtype=_BITPIX[h["BITPIX"]], count=int(np.prod(shape)), offset=self._offset)
        return arr.reshape(shape).astype(arr.dtype.newbyteorder("="))

    def _table(self):
        h = self.header
        names, fields = [], []
        for i in range(1, h["TFIELDS"] + 1):
            m = _TFORM.match(str(h.get(f"TFORM{i}", "")))
            if not m:
                raise Unsupported(f"column format {h.get(f'TFORM{i}')!r}")
            repeat = int(m.group(1) or 1)
            code = m.group(2)
            name = str(h.get(f"TTYPE{i}", f"col{i}"))
            names.append(name)
            if code == "A":
                fields.append((name, f"S{repeat}"))
            else:
                fields.append((name, _CODES[code], (repeat,)) if repeat != 1 else (name, _CODES[code]))
        dtype = np.dtype(fields)
        if dtype.itemsize != h["NAXIS1"] or h.get("PCOUNT", 0):
            raise Unsupported("table layout")
        rows = np.frombuffer(self._buf, dtype=dtype, count=h["NAXIS2"], offset=self._offset)
        return _Table(rows, names)


class RawFits:
    """All HDUs of one FITS file, read into memory; ``len()``, ``[i]`` → header dict and data."""

    def __init__(self, path):
        buf = Path(path).read_bytes()
        if not buf.startswith(b"SIMPLE  ="):
            raise OSError("No SIMPLE card found, this file does not appear to be a valid FITS file")
        self.hdus, pos = [], 0
        while pos < len(buf):
            head, start = _header(buf, pos)
            if head.get("GROUPS") or head.get("ZIMAGE") or head.get("GCOUNT", 1) != 1:
                raise Unsupported("random groups or compressed data")
            n = head.get("NAXIS", 0)
            size = 0
            if n:
                size = abs(head.get("BITPIX", 8)) // 8 * int(np.prod([head[f"NAXIS{i}"] for i in range(1, n + 1)]))
                size += head.get("PCOUNT", 0)
            if start + size > len(buf):
                raise OSError(f"File may have been truncated: actual file length ({len(buf)}) is smaller than "
                              f"the expected size ({start + size})")
            self.hdus.append(_HDU(buf, head, start, size))
            pos = start + -(-size // BLOCK) * BLOCK
            if pos < len(buf) and not buf[pos:pos + 8].startswith(b"XTENSION"):
                break  # trailing bytes that are not an extension: ignore, as astropy does

    def __len__(self):
        return len(self.hdus)

    def __getitem__(self, i):
        return self.hdus[i]
