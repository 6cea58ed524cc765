"""Benchmark: resident memory across many trials on tiny data (one network, re-initialised per trial).

    python -m search.bench.memory --trials 30

Prints RSS after trials 1, 5, 10, 20, 30: flat figures mean no model or graph leaks from trial to
trial. Two-stage trials (head, then 5 layers open) on synthetic data, on the cache by default
(`--no-cache`: the full network, live).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import optuna

from search.cache.store import FeatureCache
from search.process import configure
from search.recipe.config import SEED_CONFIG
from search.recipe.data import make_data
from search.recipe.synthetic import colour_source
from search.runner.pool import make_runner
from search.tuning.objective import Objective
from search.tuning.space import load_space
from search.tuning.study import make_sampler

SPACE = """\
base_config: {base}
fixed: {{head_epochs: 1, unfreeze_depth: 5, stage_lrs: [1.0e-4], finetune_epochs: 1,
        batch_size: 32, weights: none, train_samples: 200, val_samples: 50}}
params:
  head_lr: {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}
  dropout: {{type: float, low: 0.0, high: 0.5}}
  head_width: {{type: categorical, choices: [64, 128, 256]}}
"""


def rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trials", type=int, default=30, help="trials to run (default 30)")
    ap.add_argument("--no-cache", action="store_true",
                    help="train the full network live (as --no-cache does) instead of on the cache")
    ap.add_argument("--isolate", action="store_true",
                    help="train trials in a worker process (replaced every 10 trials)")
    args = ap.parse_args()
    configure(search=True)
    with tempfile.TemporaryDirectory() as tmp:
        cache = None if args.no_cache else FeatureCache(Path(tmp) / "cache", views=2)
        space_file = Path(tmp) / "space.yaml"
        space_file.write_text(SPACE.format(base=SEED_CONFIG))
        space = load_space(space_file)
        data = make_data(colour_source(300, 100), 200, 50, 0)
        study = optuna.create_study(direction="maximize", sampler=make_sampler("random", 0))
        marks = {1, 5, 10, 20, 30, args.trials}
        t0 = time.time()
        print(f"RSS before any trial: {rss_mib():.0f} MiB")

        def report(st, t):
            n = len(st.trials)
            if n in marks:
                print(f"RSS after trial {n:>3}: {rss_mib():7.0f} MiB  ({time.time() - t0:.0f}s)",
                      flush=True)

        runner = make_runner(data, cache, 5, isolate=args.isolate, max_runs=10)
        try:
            study.optimize(Objective(space, runner, Path(tmp) / "study"), n_trials=args.trials,
                           callbacks=[report])
        finally:
            runner.close()


if __name__ == "__main__":
    main()
