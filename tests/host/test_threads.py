"""plugin_host.threads: the server's thread count from the CPUs other programs leave free."""
import sys

from plugin_host.threads import choose_threads, runnable_elsewhere, usable_cpus


def test_threads_leave_busy_cores_to_other_programs():
    assert choose_threads(2, 0) == 2  # idle laptop: both cores
    assert choose_threads(2, 1) == 1  # GIMP busy on one core: the other
    assert choose_threads(2, 5) == 1  # overloaded: still one
    assert choose_threads(4, 1.4) == 3
    assert choose_threads(8, 0) == 8
    assert choose_threads(2, None) == 2  # unknown load: all usable CPUs, torch's own default


def test_load_is_measured_here():
    assert usable_cpus() >= 1
    busy = runnable_elsewhere(samples=2, interval_s=0)
    if sys.platform.startswith("linux"):
        assert busy is not None and busy >= 0
