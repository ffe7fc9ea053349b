"""api/memory.py: with glibc told to, memory freed after a burst of large arrays goes back to the OS.

Each case runs in a fresh interpreter (malloc settings are per process), measuring its own RSS."""

import subprocess
import sys
import textwrap
from pathlib import Path

import api.memory

PROBE = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np

    def rss_mb():
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    if sys.argv[1] == "return":  # api/memory.py alone, before anything else has allocated
        import importlib.util
        spec = importlib.util.spec_from_file_location("memory", sys.argv[2])
        memory = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(memory)
        assert memory.return_freed_memory()
    big = np.ones(30 * 2**20 // 8)  # one decoded image's worth; freeing it raises glibc's mmap threshold
    del big
    before = rss_mb()
    blocks, crumbs = [], []
    for _ in range(100):  # 200 MB in 2 MB arrays, small objects kept alive between them, as in a server
        blocks.append(np.ones(2 * 2**20 // 8))
        crumbs.append(np.ones(512))
    del blocks
    print(round(rss_mb() - before))
    """
)


def retained_mb(mode: str) -> int:
    command = [sys.executable, "-c", PROBE, mode, str(Path(api.memory.__file__))]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(result.stdout)


def test_freed_arrays_go_back_to_the_os_once_malloc_is_told_to():
    kept_by_default = retained_mb("default")
    kept_when_told = retained_mb("return")
    assert kept_when_told < 20
    assert kept_by_default > kept_when_told + 100  # what a server without it keeps after each burst
