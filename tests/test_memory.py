"""modules/memory.py: the allocator settings and memory release of the run process; the run imports no ``tfx.v1``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from modules import memory

ROOT = Path(__file__).resolve().parent.parent

# Threads that all hold heap memory at once: glibc gives each one its own arena unless capped.
ARENAS_SCRIPT = """
import ctypes, sys, threading
from modules.memory import limit_malloc_arenas
if sys.argv[1] == "cap":
    print(limit_malloc_arenas(), flush=True)
barrier = threading.Barrier(6)
def work():
    blocks = [bytes(100_000) for _ in range(20)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
import os; print(os.environ.get("MALLOC_ARENA_MAX"), flush=True)
ctypes.CDLL("libc.so.6").malloc_stats()  # one "Arena N:" block per arena, on stderr
"""

# A fragmented heap: most blocks freed, every 50th kept, so nothing is freed at the heap's top.
FRAGMENTED_SCRIPT = """
import gc
from modules.memory import memory_status, release_memory
blocks = [b"x" * 1000 + bytes([i % 256]) for i in range(250_000)]
kept = blocks[::50] + [blocks[-1]]
del blocks
gc.collect()
freed = memory_status()["VmRSS"]
print(freed, release_memory("a test")["VmRSS"])
"""

# 1 MiB blocks between small ones, after a 4 MiB block was freed (which raises glibc's threshold).
LARGE_BLOCKS_SCRIPT = """
import sys
from modules.memory import map_large_blocks, memory_status
if sys.argv[1] == "map":
    map_large_blocks()
warm = b"x" * (4 << 20)
del warm
blocks, keep = [], []
for _ in range(200):
    blocks.append(b"x" * (1 << 20))
    keep.append(b"y" * 2000)
held = memory_status()["VmRSS"]
del blocks
print(held - memory_status()["VmRSS"])
"""

# A 77 MB tensor dataset made and dropped: with the plain allocator its memory goes back.
TENSORS_SCRIPT = """
import sys
from modules.memory import memory_status, release_memory, use_plain_tensor_allocator
print(use_plain_tensor_allocator(), flush=True)
import numpy as np, tensorflow as tf
start = release_memory("start")["VmRSS"]
rows = np.random.default_rng(0).normal(size=(140_000, 136)).astype(np.float32)
dataset = tf.data.Dataset.from_tensor_slices({"x": rows}).batch(8192)
for _ in dataset: pass
del dataset, rows
print(release_memory("a test")["VmRSS"] - start, use_plain_tensor_allocator(), flush=True)
"""

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")


def _python(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    ours = (memory.ARENA_ENV, memory.ONEDNN_ENV, memory.ARROW_POOL_ENV, "MALLOC_MMAP_THRESHOLD_")
    base = {k: v for k, v in os.environ.items() if k not in ours}
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        env={**base, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


@glibc
def test_the_arena_cap_limits_glibc_arenas_and_is_exported_to_child_processes():
    capped = _python(ARENAS_SCRIPT, "cap")
    assert capped.stdout.split() == ["True", str(memory.DEFAULT_ARENAS)]
    assert capped.stderr.count("Arena ") <= memory.DEFAULT_ARENAS
    uncapped = _python(ARENAS_SCRIPT, "none")
    assert uncapped.stderr.count("Arena ") > memory.DEFAULT_ARENAS  # one per thread otherwise


@glibc
def test_a_users_malloc_arena_max_is_left_as_it_is():
    user = _python(ARENAS_SCRIPT, "cap", env={memory.ARENA_ENV: "4"})
    assert user.stdout.split() == ["False", "4"]


@glibc
def test_release_memory_hands_freed_heap_pages_back_to_the_os():
    freed, released = (int(v) for v in _python(FRAGMENTED_SCRIPT).stdout.split())
    # ~250 MB were freed but stay resident (holes in the heap) until malloc_trim returns them.
    assert freed - released > 150, (freed, released)


@glibc
def test_with_large_blocks_mapped_freed_blocks_go_back_to_the_os_without_a_trim():
    assert int(_python(LARGE_BLOCKS_SCRIPT, "map").stdout) > 180  # MiB of the 200 freed
    assert int(_python(LARGE_BLOCKS_SCRIPT, "none").stdout) < 100  # glibc's default keeps them in the heap


@glibc
def test_without_onednn_tensorflow_hands_tensor_memory_back():
    turned_off, kept, again = _python(TENSORS_SCRIPT).stdout.split()
    assert turned_off == "True"
    assert again == "False"  # TensorFlow is imported: too late to change
    assert int(kept) < 40  # MiB still resident of the ~230 MB the dataset and its copies used


def test_a_users_onednn_setting_is_left_as_it_is():
    script = "import os; from modules.memory import use_plain_tensor_allocator as u; print(u(), os.environ[%r])"
    script %= memory.ONEDNN_ENV
    assert _python(script, env={memory.ONEDNN_ENV: "1"}).stdout.split() == ["False", "1"]


def test_pyarrow_allocates_with_the_system_allocator_unless_the_user_chose_one():
    script = (
        "from modules.memory import use_system_allocator_for_arrow as u; import pyarrow as pa; "
        "print(u(), pa.default_memory_pool().backend_name, pa.array([1, 2]).sum().as_py())"
    )
    assert _python(script).stdout.split() == ["True", "system", "3"]
    # Set after pyarrow chose its pool: switched too.
    late = "import pyarrow as pa; pa.array([1]); " + script.replace("import pyarrow as pa; ", "")
    assert _python(late).stdout.split() == ["True", "system", "3"]
    assert _python(script, env={memory.ARROW_POOL_ENV: "mimalloc"}).stdout.split() == ["False", "mimalloc", "3"]


def test_parse_status_reads_resident_memory_in_mib():
    text = "Name:\tpython\nVmRSS:\t  2097152 kB\nRssAnon:\t 1048576 kB\nRssFile:\t  524288 kB\nThreads:\t9\n"
    assert memory.parse_status(text) == {"VmRSS": 2048, "RssAnon": 1024, "RssFile": 512}
    assert set(memory.memory_status()) == set(memory.STATUS_KEYS)


def test_a_model_keeps_its_weights_and_trains_on_after_the_keras_session_is_cleared():
    tf.keras.utils.set_random_seed(1)
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(4), tf.keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.random.default_rng(0).normal(size=(64, 3)), np.ones((64, 1))
    model.fit(x, y, epochs=1, verbose=0)
    before = model.predict(x, verbose=0)
    status = memory.release_memory("a test", keras_session=True)
    assert status["VmRSS"] > 0
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)
    loss = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=3, verbose=0)
    assert model.evaluate(x, y, verbose=0) < loss
    # A model built after the release gets fresh layer names, as in a new trial.
    again = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1)])
    assert again.layers[0].name == "dense"


def test_the_run_process_builds_the_pipeline_without_tfx_v1_and_its_cloud_clients(tmp_path):
    """``tfx.v1`` imports the Google Cloud AI Platform clients: ~160 MiB resident in every run."""
    script = f"""
import sys
from pathlib import Path
from pipeline.local_run import run_local
from pipeline.pipeline import create_pipeline
from tests.helpers import tiny_config
pipeline = create_pipeline(tiny_config(Path({str(tmp_path)!r})))
ids = [node.id for node in pipeline.components]
assert "Trainer" in ids and "Tuner" in ids and "Transform" in ids, ids
print(sorted(m for m in ("tfx.v1", "google.cloud.aiplatform") if m in sys.modules))
"""
    assert _python(script).stdout.split()[-1] == "[]"
