"""`make bench`: run every benchmark module in this package and print its table.

Each module `bench/bench_*.py` exposes `main() -> None` that prints one table. Benchmarks
report numbers; they never assert timing goals.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import traceback

import bench


def main() -> int:
    modules = pkgutil.iter_modules(bench.__path__)
    names = sorted(m.name for m in modules if m.name.startswith("bench_"))
    only = set(sys.argv[1:])
    failed = 0
    for name in names:
        if only and name not in only and name.removeprefix("bench_") not in only:
            continue
        print(f"\n=== {name} ===", flush=True)
        try:
            importlib.import_module(f"bench.{name}").main()
        except Exception:
            failed += 1
            traceback.print_exc()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
