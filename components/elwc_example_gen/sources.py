"""Reading one input file as a stream of bytes: GZIP detection, line-aligned chunks, damaged bytes.

* ``blocks`` yields the file's (decompressed) bytes block by block; a truncated or
  corrupt GZIP stream raises :class:`CorruptFileError` naming the file.
* ``line_chunks`` regroups blocks into chunks of about ``chunk_bytes`` that end at a
  line boundary, each with the number of its first line, so a large text file is
  parsed a chunk at a time in bounded memory.
* ``header_chunks`` does the same for a file whose first line is a header (CSV):
  every chunk starts with that header line, so each parses on its own. With a
  :class:`CsvQuoting` a chunk ends only where a CSV record does (a quoted value may
  hold newlines); a quoted field never closed raises :class:`CorruptFileError`
  naming the file and the line it opens on.
* ``blank_undecodable_lines`` turns every line that is not valid UTF-8 into a
  dead-letter entry (file, line, the bytes shown escaped) and blanks it in place,
  so the readers skip it as an empty line and line numbers stay exact.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterable, Iterator

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"
BLOCK_BYTES = 4 << 20
DEFAULT_CHUNK_BYTES = 4 << 20
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


def line_chunks(
    parts: Iterable[bytes],
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    *,
    quoting: CsvQuoting | None = None,
) -> Iterator[tuple[int, bytes]]:
    """(number of the chunk's first line, chunk) with every chunk ending at a line end (or the file's end).

    A chunk is at most ``chunk_bytes`` long unless one line is longer (then it is that line).
    With ``quoting`` (CSV) a chunk ends only at a line end outside quoted fields, so a quoted
    value holding newlines is never cut; a quoted field still open at the end of the file, or
    open for more than ``quoting.max_record_bytes``, raises :class:`CorruptFileError` naming
    the file and the line where it opens.
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
        ends = quoting.record_ends(data) if quoting is not None else None
        start = 0
        while len(data) - start >= chunk_bytes:
            if ends is None:
                cut = data.rfind(b"\n", start, start + chunk_bytes) + 1
            else:
                cut = _last_end_before(ends, start, start + chunk_bytes)
            if cut <= start:  # one line (record) longer than a chunk: the chunk is that line
                if ends is None:
                    cut = data.find(b"\n", start + chunk_bytes) + 1
                else:
                    after = np.searchsorted(ends, start + chunk_bytes)
                    cut = int(ends[after]) + 1 if after < len(ends) else 0
                if not cut:  # its end is not read yet
                    if quoting is not None:
                        quoting.check_open_length(data, start, line)
                    break
            chunk = data[start:cut]
            yield line, chunk
            line += chunk.count(b"\n")
            start = cut
        rest = data[start:]
        buffered, size = ([rest], len(rest)) if rest else ([], 0)
    if size:
        data = b"".join(buffered)
        if quoting is not None:
            quoting.check_closed(data, line)
        yield line, data


def _last_end_before(ends: np.ndarray, start: int, limit: int) -> int:
    """One past the last record end in ``[start, limit)`` (0 if none)."""
    at = np.searchsorted(ends, limit) - 1
    return int(ends[at]) + 1 if at >= 0 and ends[at] >= start else 0


def header_chunks(
    parts: Iterable[bytes], chunk_bytes: int = DEFAULT_CHUNK_BYTES, *, quoting: CsvQuoting | None = None
) -> Iterator[tuple[int, bytes]]:
    """As ``line_chunks``, every chunk led by the file's first line (its header).

    The number given with a chunk is the file line of the chunk's first line *as if*
    the header were the line(s) just before its own lines: line ``L`` of the chunk (1-based,
    the header being line 1) is line ``number + L - 1`` of the file, in every chunk.
    """
    header = None
    for line, chunk in line_chunks(parts, chunk_bytes, quoting=quoting):
        if header is None:
            ends = quoting.record_ends(chunk) if quoting is not None else None
            end = chunk.find(b"\n") if ends is None else (int(ends[0]) if len(ends) else -1)
            header = chunk if end < 0 else chunk[: end + 1]
            yield line, chunk
        else:
            yield line - header.count(b"\n"), header + chunk


_QUOTE, _NEWLINE, _RETURN = 34, 10, 13


@dataclasses.dataclass(frozen=True)
class CsvQuoting:
    """Where CSV records end, as ``pyarrow.csv`` reads them: a newline inside a quoted field is part of its value.

    A field is quoted when it starts with ``"``; inside it ``""`` is a quote; a ``"`` elsewhere is
    literal (pyarrow's rules with its default ``quote_char``, ``double_quote``, no escape char).
    Data whose quotes all open at a field start and close at a field end (RFC 4180) is scanned
    with numpy: a newline ends a record when an even number of quotes precede it. Other data
    (a stray ``"`` inside an unquoted field) is scanned quote by quote in Python.
    """

    delimiter: int
    source: str = ""
    max_record_bytes: int = 64 << 20  # a quoted field open longer than this is taken as unterminated

    def record_ends(self, data: bytes) -> np.ndarray:
        """Positions of the newlines of ``data`` that end a record (``data`` starts a record)."""
        buffer = np.frombuffer(data, np.uint8)
        newlines = np.flatnonzero(buffer == _NEWLINE)
        quotes = np.flatnonzero(buffer == _QUOTE)
        if not len(quotes):
            return newlines
        opens, closes = self._quoted_spans(buffer, quotes)
        inside = np.searchsorted(opens, newlines, side="right") - 1
        closing = np.append(closes, len(buffer))  # a field still open at the end runs to it
        quoted = (inside >= 0) & (newlines < closing[np.maximum(inside, 0)])
        return newlines[~quoted]

    def open_field(self, data: bytes) -> int:
        """Position of the quote opening a field still open at the end of ``data`` (-1: none)."""
        buffer = np.frombuffer(data, np.uint8)
        quotes = np.flatnonzero(buffer == _QUOTE)
        if not len(quotes):
            return -1
        opens, closes = self._quoted_spans(buffer, quotes)
        return int(opens[-1]) if len(opens) > len(closes) else -1

    def _quoted_spans(self, buffer: np.ndarray, quotes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions of opening quotes, of closing quotes) of the quoted fields (one more open if unclosed)."""
        if self._regular(buffer, quotes):
            return quotes[0::2], quotes[1::2]
        opens, closes = [], []
        is_field_start = np.zeros(256, bool)
        is_field_start[[self.delimiter, _NEWLINE, _RETURN]] = True
        positions = quotes.tolist()
        i, inside = 0, False
        while i < len(positions):
            p = positions[i]
            if not inside:
                if p == 0 or is_field_start[buffer[p - 1]]:
                    inside = True
                    opens.append(p)
                i += 1  # else a literal quote inside an unquoted field
            elif i + 1 < len(positions) and positions[i + 1] == p + 1:
                i += 2  # "" inside a quoted field
            else:
                inside = False
                closes.append(p)
                i += 1
        return np.asarray(opens, np.int64), np.asarray(closes, np.int64)

    def _regular(self, buffer: np.ndarray, quotes: np.ndarray) -> bool:
        """Whether every odd quote opens a field (or follows a quote) and every even one ends it (or precedes one)."""
        boundary = np.zeros(256, bool)
        boundary[[self.delimiter, _NEWLINE, _RETURN]] = True
        opens, closes = quotes[0::2], quotes[1::2]
        before = buffer[np.maximum(opens - 1, 0)]
        after_quote = np.zeros(len(opens), bool)
        after_quote[1:] = closes[: len(opens) - 1] == opens[1:] - 1
        if not np.all((opens == 0) | boundary[before] | after_quote):
            return False
        after = buffer[np.minimum(closes + 1, len(buffer) - 1)]
        before_quote = np.zeros(len(closes), bool)
        following = opens[1:]
        before_quote[: len(following)] = following == closes[: len(following)] + 1
        return bool(np.all((closes == len(buffer) - 1) | boundary[after] | before_quote))

    def _error(self, data: bytes, at: int, first_line: int, problem: str) -> CorruptFileError:
        line = first_line + data.count(b"\n", 0, at)
        return CorruptFileError(f"{self.source}: line {line}: {problem}")

    def check_closed(self, data: bytes, first_line: int) -> None:
        """Raises if ``data``, the end of the file, ends inside a quoted field."""
        at = self.open_field(data)
        if at >= 0:
            raise self._error(data, at, first_line, "unterminated quoted field: the '\"' opening it is never closed")

    def check_open_length(self, data: bytes, start: int, first_line: int) -> None:
        """Raises if the record pending at ``start`` holds a quoted field open for over ``max_record_bytes``."""
        if len(data) - start <= self.max_record_bytes:
            return
        at = self.open_field(data[start:])
        if at >= 0:
            raise self._error(
                data[start:],
                at,
                first_line,
                f"a quoted field is still open {len(data) - start - at:,} bytes later: an unterminated '\"'?",
            )


def blank_undecodable_lines(
    data: bytes, source: str, first_line: int = 1, quoting: CsvQuoting | None = None
) -> tuple[bytes, list[dict]]:
    """(data with every non-UTF-8 line emptied, a dead-letter entry for each).

    With ``quoting`` (CSV) a whole record is emptied (a quoted value may span lines), its
    newlines kept so that line numbers stay exact; the entry names the record's first line.
    """
    try:
        data.decode("utf-8")
        return data, []
    except UnicodeDecodeError:
        pass
    if quoting is None:
        records = data.split(b"\n")
    else:
        ends = quoting.record_ends(data).tolist()
        starts = [0] + [end + 1 for end in ends]
        records = [data[start:end] for start, end in zip(starts, [*ends, len(data)], strict=True)]
    entries = []
    line = first_line
    for index, record in enumerate(records):
        try:
            record.decode("utf-8")
        except UnicodeDecodeError as error:
            entries.append(
                {
                    "reason": UNDECODABLE_LINE,
                    "source": source,
                    "line": line,
                    "detail": f"not valid UTF-8 ({error.reason} at byte {error.start} of the line)",
                    "raw": record.decode("utf-8", errors="backslashreplace"),
                }
            )
            records[index] = b"\n" * record.count(b"\n")
        line += record.count(b"\n") + 1
    return b"\n".join(records), entries
