"""GZIP TFRecord output at the speed of the encoder: Beam's TFRecord sink with a faster compressor.

``beam.io.WriteToTFRecord`` compresses at zlib's default level 6 and checksums
each record with crcmod: on ELWC with 136 float features per document that was
most of the ExampleGen's time (measured: level 6 ~4x slower than level 1, for
files ~25 % smaller). This sink keeps Beam's file-based write (temp files,
atomic finalization, sharding) and the TFRecord framing, but checksums with
``google_crc32c`` (hardware CRC32C) and writes one GZIP stream at
``COMPRESSION_LEVEL``, buffered, so the files are ordinary GZIP TFRecords that
``tf.data.TFRecordDataset(..., compression_type="GZIP")`` reads.
"""

from __future__ import annotations

import struct
import zlib

import apache_beam as beam
import google_crc32c
from apache_beam import coders
from apache_beam.io import filebasedsink, iobase
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

COMPRESSION_LEVEL = 1
_FLUSH_BYTES = 4 << 20


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def frame(record: bytes) -> bytes:
    """One TFRecord: length, masked CRC of the length, data, masked CRC of the data."""
    length = struct.pack("<Q", len(record))
    return length + _masked_crc(length) + record + _masked_crc(record)


class _GzipWriter:
    """A file handle that GZIP-compresses what is written to it, in large blocks."""

    def __init__(self, raw):
        self._raw = raw
        self._compressor = zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, 31)
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._size += len(data)
        if self._size >= _FLUSH_BYTES:
            self._drain()

    def _drain(self) -> None:
        if self._pending:
            self._raw.write(self._compressor.compress(b"".join(self._pending)))
            self._pending, self._size = [], 0

    def close(self) -> None:
        self._drain()
        self._raw.write(self._compressor.flush())
        self._raw.close()


class _FastGzipTFRecordSink(filebasedsink.FileBasedSink):
    def __init__(self, file_path_prefix: str, file_name_suffix: str):
        super().__init__(
            file_path_prefix=file_path_prefix,
            coder=coders.BytesCoder(),
            file_name_suffix=file_name_suffix,
            num_shards=0,
            shard_name_template=None,
            mime_type="application/octet-stream",
            compression_type=CompressionTypes.UNCOMPRESSED,
        )

    def open(self, temp_path: str):
        return _GzipWriter(FileSystems.create(temp_path, self.mime_type, CompressionTypes.UNCOMPRESSED))

    def write_encoded_record(self, file_handle, encoded_value: bytes) -> None:
        file_handle.write(frame(encoded_value))

    def close(self, file_handle) -> None:
        file_handle.close()


class WriteToGzipTFRecord(beam.PTransform):
    """Serialized records -> ``<prefix>-SSSSS-of-NNNNN<suffix>`` GZIP TFRecord files."""

    def __init__(self, file_path_prefix: str, file_name_suffix: str = ".gz"):
        super().__init__()
        self._sink = _FastGzipTFRecordSink(file_path_prefix, file_name_suffix)

    def expand(self, records):
        return records | iobase.Write(self._sink)
