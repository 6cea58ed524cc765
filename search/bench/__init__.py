"""Benchmarks that print figures (tables live in docs/benchmarks.md): cache_speed.py (the cache
against the live pipeline, a full study's wall time), compare.py (Optuna against KerasTuner at an
equal epoch budget), memory.py (resident memory across trials: python -m search.bench.memory)."""
