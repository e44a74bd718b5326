"""Keeping the long-lived run process small: glibc's malloc arenas and handing freed memory back.

``ltr run`` executes every component in one process (LocalDagRunner), so what one component
frees but the allocator keeps is still counted while the next one runs, and while the
ServingCheck's separate process runs beside it. Two glibc behaviours cause most of that:

* glibc gives threads that contend for the heap their own arena, up to 8 per core, and an
  arena keeps the memory freed into it. TensorFlow's and Beam's thread pools create many;
  ``limit_malloc_arenas`` caps them (``mallopt(M_ARENA_MAX)``, as ``MALLOC_ARENA_MAX`` does).
* freed heap pages stay resident until ``malloc_trim`` returns them; ``release_memory``
  collects Python garbage (optionally Keras' global session state first) and trims.
* glibc serves a block from the heap instead of its own mapping once a block that large
  has been freed (the mmap threshold rises with the largest freed block, up to 32 MiB), so
  training's many short-lived multi-megabyte tensors pile up in the heap between trims.
  ``map_large_blocks`` pins the threshold (``mallopt(M_MMAP_THRESHOLD)``): blocks of 128 KiB
  or more get their own mapping and go back to the OS when freed, for some CPU (measured
  ~5-8 % more CPU seconds in the Tuner and Trainer, ~150 MiB less at their peaks).

And one TensorFlow behaviour: with its oneDNN optimizations on (the default of TF 2.15 on
x86), TensorFlow allocates every tensor of 256 KiB or more from a pool (``MklCPUAllocator``,
a BFC allocator) that grows to the largest amount of tensor memory ever in use at once and
never shrinks, so the Tuner's largest trial stays resident for the rest of the run.
``use_plain_tensor_allocator`` turns oneDNN off for the run process (``TF_ENABLE_ONEDNN_OPTS=0``):
tensors then come from malloc and are returned like any other memory. It also changes
which CPU kernels run (Eigen's instead of oneDNN's), so float results may differ in the
last bits, as TensorFlow's own notice says.

And one Arrow behaviour: pyarrow allocates from jemalloc by default, which keeps freed pages
cached per thread and returns them only after a delay, so ElwcExampleGen's parsing (pyarrow
tables of every chunk, two chunks at a time) held ~150 MiB more at its peak than with the
system allocator, for no less CPU (10.0 vs 11.5 CPU s standalone on 2,000 MSLR-shaped
queries). ``use_system_allocator_for_arrow`` makes pyarrow use malloc, whose arenas are capped
and trimmed as above.

Elsewhere than glibc (no ``libc.so.6``) both only do the Python part.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys

from absl import logging

ARENA_ENV = "MALLOC_ARENA_MAX"
ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
M_ARENA_MAX = -8  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 << 10  # glibc's initial value, no longer raised as blocks are freed
DEFAULT_ARENAS = 2
STATUS_KEYS = ("VmRSS", "RssAnon", "RssFile")


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None


def limit_malloc_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Caps glibc's malloc arenas of this process at ``arenas`` and exports ``MALLOC_ARENA_MAX``
    for the processes it starts. Call it before threads start allocating.

    A ``MALLOC_ARENA_MAX`` already in the environment wins (glibc applied it when this process
    started): nothing changes then. True if this call set the cap.
    """
    if os.environ.get(ARENA_ENV):
        return False
    os.environ[ARENA_ENV] = str(arenas)
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, arenas) == 1)


def map_large_blocks(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Blocks of ``threshold`` bytes or more get their own mapping, returned to the OS when freed
    (glibc no longer raises the threshold). Unless ``MALLOC_MMAP_THRESHOLD_`` is set; True if set here."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return False
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, threshold) == 1)


def use_plain_tensor_allocator() -> bool:
    """Turns TensorFlow's oneDNN optimizations (and with them its never-shrinking tensor pool)
    off for this process and the processes it starts, unless ``TF_ENABLE_ONEDNN_OPTS`` is set
    already. Call it before TensorFlow is imported; True if this call turned it off."""
    if ONEDNN_ENV in os.environ or "tensorflow" in sys.modules:
        return False
    os.environ[ONEDNN_ENV] = "0"
    return True


def use_system_allocator_for_arrow() -> bool:
    """pyarrow allocates with malloc (``ARROW_DEFAULT_MEMORY_POOL=system``) in this process and the
    processes it starts, unless the variable is set already. True if this call set it."""
    if os.environ.get(ARROW_POOL_ENV):
        return False
    os.environ[ARROW_POOL_ENV] = "system"
    if "pyarrow" in sys.modules:  # its default pool may be chosen already
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())
    return True


def parse_status(text: str) -> dict[str, int]:
    """MiB of ``VmRSS``, ``RssAnon`` and ``RssFile`` from the text of ``/proc/<pid>/status``."""
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in STATUS_KEYS:
            values[key] = int(rest.split()[0]) // 1024  # kB
    return values


def memory_status() -> dict[str, int]:
    """This process's resident memory in MiB (empty where there is no ``/proc``)."""
    try:
        with open("/proc/self/status") as handle:
            return parse_status(handle.read())
    except OSError:
        return {}


def release_memory(what: str, keras_session: bool = False) -> dict[str, int]:
    """Frees unreachable Python objects, and Keras' global state if ``keras_session`` (only
    once the models built in it are no longer used), then hands the free heap pages back to
    the OS. Logs and returns the resident MiB after it."""
    before = memory_status().get("VmRSS")
    if keras_session and "tensorflow" in sys.modules:
        import tensorflow as tf

        tf.keras.backend.clear_session()
    gc.collect()
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
    after = memory_status()
    logging.info("Memory released after %s: resident %s -> %s MiB (%s)", what, before, after.get("VmRSS"), after)
    return after
