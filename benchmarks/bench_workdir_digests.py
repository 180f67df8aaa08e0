"""What recording and checking the work directory's digests costs, on the demo (`rerender demo`).

Every entry of the work directory (decoded frames, flows, candidates, key copies, output frames)
gets its size and BLAKE2b digest recorded when written and checked when read back
(rerender.files.record_entry / read_entry). This runs the demo once, then prints:

- the demo's wall time and the share of it the digests take: the time to hash the bytes written
  (once per entry written) and read back, measured by hashing the same entries again here;
- a resumed run's wall time (nothing left to do but the checks: every decoded frame and output
  frame is hashed once, the output written again), with the seconds the checks themselves take.

    python3 benchmarks/bench_workdir_digests.py [--keep DIR]

Compare with the same demo on a build without digests by timing `rerender demo -o DIR` twice there.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from rerender.demo import run_demo
from rerender.files import bytes_digest, entry_ok


def _entries(work: Path) -> list[Path]:
    return [p for p in work.rglob("*") if p.is_file() and not p.name.startswith(".") and
            p.with_name(f".{p.name}.b2").exists()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", metavar="DIR", help="run the demo in DIR and keep it")
    args = ap.parse_args(argv)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="rerender-digests-"))
    try:
        t0 = time.perf_counter()
        run_demo(root)
        first = time.perf_counter() - t0
        entries = _entries(root / "work")
        data = [p.read_bytes() for p in entries]
        t0 = time.perf_counter()
        for d in data:
            bytes_digest(d)
        hash_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ok = all(entry_ok(p) for p in entries)
        check_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_demo(root)
        resumed = time.perf_counter() - t0
        mb = sum(map(len, data)) / 1e6
        print(f"demo: {first:.1f} s; {len(entries)} entries still in the work directory ({mb:.1f} MB) hash in "
              f"{hash_s * 1000:.1f} ms ({mb / max(hash_s, 1e-9):.0f} MB/s), read and check in {check_s * 1000:.1f} ms "
              f"(all good: {ok})")
        print(f"resumed demo: {resumed:.1f} s, of which the checks about {check_s * 1000:.1f} ms "
              f"({100 * check_s / resumed:.2f}%)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
