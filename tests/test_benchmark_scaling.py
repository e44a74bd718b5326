"""benchmarks/scaling.py: the memory it reports for a process tree, and per component."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

from benchmarks import scaling

MIB = 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/PID/smaps_rollup")
def test_tree_usage_counts_a_childs_shared_pages_once_in_pss_and_in_run_plus_private():
    # A child holding 64 MiB of its own beside this process (which shares its interpreter's pages).
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; b = bytearray(64 << 20); print(1, flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    try:
        child.stdout.readline()
        me = psutil.Process()
        rss, cpu, pss, own, own_private = scaling._tree_usage(me)
        child_rss = psutil.Process(child.pid).memory_info().rss
        assert own == pytest.approx(me.memory_info().rss, rel=0.05)
        assert rss == pytest.approx(own + child_rss, rel=0.05)
        assert cpu > 0
        # The child's private pages (its 64 MiB) are counted, its shared library pages are not.
        assert own + 60 * MIB < own_private < rss
        assert 0 < pss < rss
    finally:
        child.kill()
        child.wait()


def test_component_peaks_take_the_highest_sample_of_the_field_inside_each_window():
    samples = [(t, 100 * MIB * t, 0.0, 50 * MIB * t, 80 * MIB * t, 90 * MIB * t) for t in range(1, 7)]
    windows = {"Trainer": (2, 4), "Pusher": (10, 11)}
    assert scaling.component_peaks(windows, samples) == {"Trainer": 400, "Pusher": None}
    assert scaling.component_peaks(windows, samples, scaling.PSS)["Trainer"] == 200
    assert scaling.component_peaks(windows, samples, scaling.OWN_RSS)["Trainer"] == 320
    assert scaling.component_peaks(windows, samples, scaling.OWN_PRIVATE)["Trainer"] == 360
