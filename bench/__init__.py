"""Benchmarks that print figures and ratios (not tests): ``python -m bench [NAME ...] [--quick]``.

Each benchmark measures the engine and its limit back to back in the same run, checks that the
answer is right (a fast wrong answer fails) and writes its raw numbers to ``bench/results/``.
"""
