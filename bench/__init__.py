"""Benchmarks: speed and memory as ratios against a baseline run in the same go."""
