"""Benchmarks against the emulator on loopback: `python -m bench` (see bench/README.md)."""
