"""Benchmarks that print figures (tables live in docs/benchmarks.md): cache_speed.py (the cache
against the live pipeline, a full study's wall time), compare.py (Optuna against KerasTuner at an
equal epoch budget), quality.py (search settings at equal wall time, each best retrained and
tested beside the seed recipe), memory.py (resident memory across trials: python -m
search.bench.memory), worker_memory.py (a worker's time and memory over deep runs, warm against
fresh), fidelity.py (how well early signals rank trials), prior_toy.py (the prior sampler on a toy
objective)."""
