"""plugin_host.memory: glibc's mmap threshold inside a block, torch's huge-page switch from the CLI."""
import os
import subprocess
import sys

import pytest

from plugin_host.memory import _glibc

# In a fresh interpreter (a small heap with no free chunk of that size), whether a 1.5 MiB malloc
# gets a mapping of its own (mallinfo2's hblks) inside the block, after it, and for 40 MiB.
#: Whether a malloc of ``size`` got a mapping of its own (mallinfo2's hblks), for the probes below.
MAPPED = """
import ctypes
from plugin_host.memory import _glibc, heap_kept, large_blocks_mapped

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = _glibc()
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def mapped(size):
    before = libc.mallinfo2().hblks
    block = libc.malloc(size)
    found = libc.mallinfo2().hblks > before
    libc.free(block)
    return found
"""

PROBE = MAPPED + """

with large_blocks_mapped(threshold_mib=1) as applied:
    inside = mapped(3 << 19)
print(applied, inside, mapped(3 << 19), mapped(40 << 20))
"""


@pytest.mark.skipif(_glibc() is None or not hasattr(_glibc(), "mallinfo2"), reason="needs glibc >= 2.33")
def test_large_blocks_are_mapped_inside_the_block_only():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "False", "True"]


def test_cli_turns_on_huge_pages_before_torch_loads():
    code = ("import os, sys\n"
            "from plugin_host.cli import main\n"
            "main(['list'])\n"
            "print(os.environ.get('THP_MEM_ALLOC_ENABLE'), 'torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "1 False"


def test_memory_is_spent_for_speed_when_asked_or_when_plenty_is_available():
    from plugin_host.memory import AMPLE_MEMORY_MIB, spend_memory

    assert spend_memory("high", available_mib=100) and not spend_memory("low", available_mib=1e6)
    assert spend_memory("auto", available_mib=AMPLE_MEMORY_MIB)
    assert not spend_memory("auto", available_mib=AMPLE_MEMORY_MIB - 1)
    with pytest.raises(ValueError, match="memory"):
        spend_memory("lots")


def test_available_memory_is_read_on_linux():
    from plugin_host.memory import available_memory_mib

    available = available_memory_mib()
    if sys.platform.startswith("linux"):
        assert available is not None and 0 < available < 1 << 30


def test_unknown_memory_setting_is_a_one_line_usage_error(tmp_path):
    from PIL import Image

    content = tmp_path / "c.png"
    Image.new("RGB", (16, 16)).save(content)
    result = subprocess.run([sys.executable, "-m", "plugin_host", "run", "gatys", str(content), "--style", str(content),
                             "--memory", "lots", "-o", str(tmp_path / "out.png")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: --memory: unknown value 'lots' (known: auto, low, high)"]
    assert not (tmp_path / "out.png").exists()


HEAP_PROBE = MAPPED + """

with heap_kept() as applied:
    inside = mapped(64 << 20)
print(applied, inside, mapped(64 << 20))
"""


@pytest.mark.skipif(_glibc() is None or not hasattr(_glibc(), "mallinfo2"), reason="needs glibc >= 2.33")
def test_heap_kept_maps_no_block_inside_the_block_only():
    result = subprocess.run([sys.executable, "-c", HEAP_PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "True"]


NESTED_PROBE = MAPPED + """

with heap_kept():
    with heap_kept():
        pass
    inner_left = mapped(64 << 20)  # still kept: only the outermost block restores glibc's settings
print(inner_left, mapped(64 << 20))
"""


@pytest.mark.skipif(_glibc() is None or not hasattr(_glibc(), "mallinfo2"), reason="needs glibc >= 2.33")
def test_heap_kept_blocks_nest():
    result = subprocess.run([sys.executable, "-c", NESTED_PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]


SESSION_PROBE = MAPPED + """
import torch
from plugin_host import Method
from plugin_host.plugins import PluginInfo, RegisteredMethod, Registry
from plugin_host.runner import Session
from plugin_host.schema import ImageInput, Schema

seen = []
def run(inputs, params, ctx):
    seen.append(mapped(64 << 20))
    return inputs["content"]

registry = Registry()
probe = Method(name="probe", title="Probe", description="probe", inputs=(ImageInput("content", role="content"),), schema=Schema(()), run=run)
registry.methods["probe"] = RegisteredMethod(probe, PluginInfo("probe", None, None))
for memory in ("high", "low"):
    Session(registry=registry, device="cpu", memory=memory).run("probe", {"content": torch.rand(1, 3, 8, 8)})
    seen.append(mapped(64 << 20))  # after a high run the heap lingers for the next; a low run trims it first
print(*seen)
"""


@pytest.mark.skipif(_glibc() is None or not hasattr(_glibc(), "mallinfo2"), reason="needs glibc >= 2.33")
def test_session_runs_methods_with_the_heap_kept_only_when_memory_may_be_spent():
    result = subprocess.run([sys.executable, "-c", SESSION_PROBE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "True", "True"]


LINGER_PROBE = MAPPED + """
import time
from plugin_host.memory import release_lingering_heap

with heap_kept(linger_s=0.3):
    pass
lingering = mapped(64 << 20)   # still kept right after the block
time.sleep(1.0)
released = mapped(64 << 20)    # trimmed and restored in the background
with heap_kept(linger_s=0.3):
    pass
time.sleep(0.1)
with heap_kept(linger_s=0.6):  # a block within the linger: the first release is void
    pass
time.sleep(0.4)
renewed = mapped(64 << 20)
release_lingering_heap()       # a lean run trims at once
print(lingering, released, renewed, mapped(64 << 20))
"""


@pytest.mark.skipif(_glibc() is None or not hasattr(_glibc(), "mallinfo2"), reason="needs glibc >= 2.33")
def test_a_lingering_heap_is_released_after_its_time_unless_another_block_begins():
    result = subprocess.run([sys.executable, "-c", LINGER_PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "False", "True"]
