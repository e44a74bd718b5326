"""Training input memory: the shuffle buffer holds a bounded number of bytes of lists, not the split."""

from __future__ import annotations

import tensorflow as tf

from modules.training import inputs


def _write(path, sizes: list[int]) -> str:
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for size in sizes:
            writer.write(b"x" * size)
    return str(path)


def test_shuffle_buffer_holds_about_its_byte_budget_of_lists(tmp_path):
    big = _write(tmp_path / "big.gz", [400_000] * 80)  # MSLR-shaped lists: ~400 KB each
    assert inputs.shuffle_buffer_lists([big], budget_bytes=64 << 20) == (64 << 20) // 400_000
    small = _write(tmp_path / "small.gz", [300] * 80)  # small lists: capped at SHUFFLE_LISTS
    assert inputs.shuffle_buffer_lists([small], budget_bytes=64 << 20) == inputs.SHUFFLE_LISTS
    huge = _write(tmp_path / "huge.gz", [8 << 20] * 3)  # never fewer than 16 lists
    assert inputs.shuffle_buffer_lists([huge], budget_bytes=64 << 20) == 16
