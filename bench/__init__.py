"""Benchmarks for smshooks (run `bench/ingest`); a package so RQ workers can import `bench.noop_jobs`."""
