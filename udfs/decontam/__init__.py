"""Decontamination against eval benchmarks: the benchmark files, n-gram overlap, near matches."""
