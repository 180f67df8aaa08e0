"""Process checks shared by the tests that start and cancel worker processes (Linux: reads /proc)."""
from __future__ import annotations

import time


def process_gone(pid: int, timeout: float = 5.0) -> bool:
    """True once ``pid`` has exited (a zombie whose parent has not reaped it counts as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False
