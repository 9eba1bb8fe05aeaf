"""Benchmarks: each module writes benchmarks/results/<name>.json and prints a markdown table."""
