"""Performance benchmarks (not tests): each module has main(); `python -m benchmarks` runs them all."""
