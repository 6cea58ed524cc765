"""Benchmark: a worker's time and memory over deep runs, warm against fresh.

    python -m search.bench.worker_memory --data-dir DIR --weights FILE [--cache-mem MiB]

One worker process on one thread (as each of `--jobs 2` on 2 cores) and a cold cache in a
temporary folder: the seed recipe (it fills the cache), a deep config (4 stages of 30 layers,
6 epochs each: the default space's deepest kind), the deep config on seed 1 on that warm worker,
then the same on a fresh worker. After each run: seconds, val accuracy, the cache's line, and the
worker's memory from /proc/<pid>/smaps_rollup (Anonymous: its own; Rss and Pss count the mapped
cache files too, which are shared and reclaimable). Linux only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from search.cache.store import FeatureCache
from search.process import configure
from search.recipe.config import SEED_CONFIG, TrainConfig
from search.recipe.data import load_source, make_data
from search.runner.worker import WorkerRunner, WorkerSpec

DEEP = {"unfreeze_step": 30, "unfreeze_depth": 120, "stage_lrs": (3e-4, 1e-4, 5e-4, 3e-4),
        "finetune_epochs": 6, "head_lr": 2e-3}


def memory_gib(pid: int) -> dict[str, float]:
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, *rest = line.split()
            if key in ("Rss:", "Pss:", "Anonymous:"):
                out[key[:-1]] = round(int(rest[0]) / 2**20, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="the image folders (train/, test/)")
    ap.add_argument("--weights", required=True, help="the backbone's .weights.h5")
    ap.add_argument("--cache-mem", type=float, default=0.0,
                    help="MiB of newly computed entries the worker holds in memory (default 0)")
    args = ap.parse_args()
    configure(search=True)
    seed = TrainConfig.load(SEED_CONFIG).replace(weights=args.weights)
    deep = seed.replace(**DEEP)
    data = make_data(load_source(args.data_dir), seed.train_samples, seed.val_samples,
                     seed.split_seed)
    with tempfile.TemporaryDirectory() as tmp:
        spec = WorkerSpec(data, FeatureCache(tmp, args.cache_mem).args(), DEEP["unfreeze_depth"],
                          threads=1)

        def run(worker: WorkerRunner, name: str, config: TrainConfig) -> None:
            t0 = time.perf_counter()
            out = worker.run(config)
            print(json.dumps({"run": name, "seconds": round(time.perf_counter() - t0, 1),
                              "val_accuracy": out.value, "cache": out.cache,
                              **memory_gib(worker.proc.pid)}), flush=True)

        warm = WorkerRunner(spec)
        try:
            run(warm, "seed recipe (fills the cache)", seed)
            run(warm, "deep, seed 0 (its first trace)", deep)
            run(warm, "deep, seed 1, warm worker", deep.replace(seed=1))
        finally:
            warm.close()
        fresh = WorkerRunner(spec)
        try:
            run(fresh, "deep, seed 1, fresh worker", deep.replace(seed=1))
        finally:
            fresh.close()


if __name__ == "__main__":
    main()
