"""`python -m benchmarks`: the performance benchmarks of `benchmarks/perf/` (see `benchmarks/perf/__main__.py`)."""

from benchmarks.perf.__main__ import main

main()
