"""The benchmark harness: `make bench` (bench/run.py) writes bench/REPORT.md."""
