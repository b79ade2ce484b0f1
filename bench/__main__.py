"""`make bench`: run every benchmark module in this package and print its table.

Each module `bench/bench_*.py` exposes `main() -> None` that prints one table. Benchmarks
report numbers; they never assert timing goals. `python -m bench NAME...` runs only those;
a name that is no benchmark is an error (a bench's own options go to
`python -m bench.bench_NAME ...`).
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
    unknown = sorted(n for n in only if n not in names and f"bench_{n}" not in names)
    if unknown:  # a misspelt name would otherwise print nothing and exit 0
        have = ", ".join(n.removeprefix("bench_") for n in names)
        print(
            f"no such benchmark: {', '.join(unknown)} (have: {have}; a bench's options: "
            "python -m bench.bench_NAME ...)",
            file=sys.stderr,
        )
        return 2
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
