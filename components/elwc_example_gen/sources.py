"""Reading one input file as a stream of bytes: GZIP detection, line-aligned chunks, damaged bytes.

* ``blocks`` yields the file's (decompressed) bytes block by block; a truncated or
  corrupt GZIP stream raises :class:`CorruptFileError` naming the file.
* ``line_chunks`` regroups blocks into chunks of about ``chunk_bytes`` that end at a
  line boundary, each with the number of its first line, so a large text file is
  parsed a chunk at a time in bounded memory.
* ``header_chunks`` does the same for a file whose first line is a header (CSV):
  every chunk starts with that header line, so each parses on its own.
* ``blank_undecodable_lines`` turns every line that is not valid UTF-8 into a
  dead-letter entry (file, line, the bytes shown escaped) and blanks it in place,
  so the readers skip it as an empty line and line numbers stay exact.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

GZIP_MAGIC = b"\x1f\x8b"
BLOCK_BYTES = 4 << 20
DEFAULT_CHUNK_BYTES = 8 << 20
UNDECODABLE_LINE = "undecodable_line"
CORRUPT_FILE = "corrupt_file"
# examples.on_corrupt_file
ON_CORRUPT_FILE = ("fail", "dead_letter")


class CorruptFileError(ValueError):
    """A compressed input that cannot be read to its end; the message names the file."""


class LineCounter:
    """Counts the lines of the blocks passing through it (how much of a damaged file was readable)."""

    def __init__(self):
        self.lines = 0

    def __call__(self, parts: Iterable[bytes]) -> Iterator[bytes]:
        for part in parts:
            self.lines += part.count(b"\n")
            yield part


def blocks(handle, source: str, block_bytes: int = BLOCK_BYTES) -> Iterator[bytes]:
    """The file's bytes, GZIP-decompressed if it starts with the GZIP magic (multi-member too)."""
    first = handle.read(block_bytes)
    if first[:2] != GZIP_MAGIC:
        while first:
            yield first
            first = handle.read(block_bytes)
        return
    decompressor = zlib.decompressobj(wbits=31)
    pending = first
    try:
        while True:
            if not pending:
                pending = handle.read(block_bytes)
                if not pending:
                    break
            out = decompressor.decompress(pending)
            if out:
                yield out
            pending = b""
            if decompressor.eof:
                pending = decompressor.unused_data
                if not pending:
                    pending = handle.read(block_bytes)
                    if not pending:
                        return
                if pending[:2] != GZIP_MAGIC:
                    raise CorruptFileError(f"{source}: corrupt GZIP data: trailing bytes after a complete member")
                decompressor = zlib.decompressobj(wbits=31)
    except zlib.error as error:
        raise CorruptFileError(f"{source}: corrupt GZIP data: {error}") from None
    if not decompressor.eof:
        raise CorruptFileError(f"{source}: truncated GZIP file: it ends before the end of its compressed data")


def read_all(handle, source: str) -> bytes:
    return b"".join(blocks(handle, source))


def line_chunks(parts: Iterable[bytes], chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[tuple[int, bytes]]:
    """(number of the chunk's first line, chunk) with every chunk ending at a line end (or the file's end).

    A chunk is at most ``chunk_bytes`` long unless one line is longer (then it is that line).
    """
    buffered: list[bytes] = []
    size = 0
    line = 1
    for part in parts:
        buffered.append(part)
        size += len(part)
        if size < chunk_bytes:
            continue
        data = b"".join(buffered)
        start = 0
        while len(data) - start >= chunk_bytes:
            cut = data.rfind(b"\n", start, start + chunk_bytes) + 1
            if cut <= start:  # one line longer than a chunk: the chunk is that line
                cut = data.find(b"\n", start + chunk_bytes) + 1
                if not cut:  # its end is not read yet
                    break
            chunk = data[start:cut]
            yield line, chunk
            line += chunk.count(b"\n")
            start = cut
        rest = data[start:]
        buffered, size = ([rest], len(rest)) if rest else ([], 0)
    if size:
        yield line, b"".join(buffered)


def header_chunks(parts: Iterable[bytes], chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[tuple[int, bytes]]:
    """As ``line_chunks``, every chunk led by the file's first line (its header).

    The number given with a chunk is the file line of the chunk's first line *as if*
    the header were the line just before its own lines: line ``L`` of the chunk (1-based,
    the header being line 1) is line ``number + L - 1`` of the file, in every chunk.
    """
    header = None
    for line, chunk in line_chunks(parts, chunk_bytes):
        if header is None:
            end = chunk.find(b"\n")
            header = chunk if end < 0 else chunk[: end + 1]
            yield line, chunk
        else:
            yield line - 1, header + chunk


def blank_undecodable_lines(data: bytes, source: str, first_line: int = 1) -> tuple[bytes, list[dict]]:
    """(data with every non-UTF-8 line emptied, a dead-letter entry for each)."""
    try:
        data.decode("utf-8")
        return data, []
    except UnicodeDecodeError:
        pass
    lines = data.split(b"\n")
    entries = []
    for index, line in enumerate(lines):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            entries.append(
                {
                    "reason": UNDECODABLE_LINE,
                    "source": source,
                    "line": first_line + index,
                    "detail": f"not valid UTF-8 ({error.reason} at byte {error.start} of the line)",
                    "raw": line.decode("utf-8", errors="backslashreplace"),
                }
            )
            lines[index] = b""
    return b"\n".join(lines), entries
