"""Performance benchmarks, each a script with `run()` (the rows) and `print_table()`: the entry points of the
benchmarks package, apart from its library. `python -m benchmarks` (or `python -m benchmarks.perf`) runs them."""
