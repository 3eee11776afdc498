"""Following the files a run appends to: its metrics records and the tail of its log."""
from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["MetricsFollower", "log_tail"]


class MetricsFollower:
    """Reads the JSON records appended to a ``metrics.jsonl`` since the previous call.

    Keeps the byte offset and any incomplete last line (a writer may be half-way through it),
    so every byte is read once. When the file is replaced or truncated (a resumed run may
    rewrite it) it starts over and sets ``reset`` so a caller can drop what it had.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.offset = 0
        self.reset = False
        self._partial = b""
        self._inode = None

    def read_new(self) -> list[dict]:
        """The complete records appended since the last call (malformed lines are skipped)."""
        self.reset = False
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return []
        if (self._inode is not None and st.st_ino != self._inode) or st.st_size < self.offset:
            self.offset, self._partial, self.reset = 0, b"", True
        self._inode = st.st_ino
        if st.st_size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read(st.st_size - self.offset)
        self.offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # b"" when the chunk ended with a newline
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records


def log_tail(path, lines: int = 40, max_bytes: int = 65_536) -> str:
    """The last ``lines`` lines of a text file (reads at most ``max_bytes`` from its end)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace").replace("\r", "\n")
    return "\n".join(text.splitlines()[-lines:])
