"""The cache against the live pipeline, side by side, in one run; and a full study's wall time.

1. `bench_cache`: the same config (stage 0, then stages opening 5, 10, 15, 20 layers;
   `stage_epochs` each, no early stopping) trained without the cache, with a fresh one (the
   study's first trial, which fills it) and again (every later trial): seconds per stage, the
   one-time fill and the cache's memory; optionally the other storage dtype.
2. `bench_study`: the wall time of a full study plus its retrain (search.jobs.run_search), next
   to what the same epochs would cost without the cache.
Figures, not a pass/fail test: these machines are noisy, so read the ratios.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass

from search.jobs import run_search
from search.options import RunOptions, SearchOptions
from search.recipe.config import SEED_CONFIG, TrainConfig


@dataclass
class CacheBench:
    images: tuple[int, int]  # train, val
    config: TrainConfig
    depths: list[int]
    epochs: list[int]  # per stage, of the cached run
    live: list[float] | None  # seconds per stage without the cache (None: skipped)
    first: list[float]  # the 1st cached trial, which fills the cache and traces the programs
    cached: list[float]  # a later cached trial, on the programs the 1st traced
    fill_seconds: float
    memory_mib: float
    val_accuracy: dict[str, float]  # "no cache", "cached"
    other_dtype: dict | None = None  # dtype, val_accuracy, memory_mib, fill_seconds, seconds
    fresh: list[float] | None = None  # a new worker's 1st trial on the filled cache (builds, traces)
    steady: list[float] | None = None  # per stage, its fastest epoch in the later trial

    def fixed(self, seconds: list[float]) -> list[float]:
        """Per stage, seconds outside the epochs' own compute: the stage's time less its epochs
        at the steady rate (the fastest epoch of that stage in the later trial)."""
        return [t - n * e for t, n, e in zip(seconds, self.epochs, self.steady)]

    @property
    def live_seconds_per_epoch(self) -> float:
        return sum(self.live) / sum(self.epochs) if self.live else float("nan")


def _seconds(result) -> list[float]:
    return [s.seconds for s in result.stages]


class EpochClock:
    """A Keras callback timing every epoch (validation included), by global epoch index."""

    def __init__(self):
        import keras

        clock = self

        class _Clock(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                clock.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                clock.seconds[epoch] = time.perf_counter() - clock.t0

        self.seconds: dict[int, float] = {}
        self.callback = _Clock()

    def fastest(self, result) -> list[float]:
        """Per stage of `result`, its fastest epoch."""
        return [min(self.seconds[s.first_epoch + i] for i in range(s.epochs)) for s in result.stages]


def bench_cache(opts: RunOptions, stage_epochs: int = 2, skip_live: bool = False,
                skip_float16: bool = False, log=print) -> CacheBench:
    from search.cache.features import cached_stages
    from search.cache.store import FeatureCache
    from search.recipe.data import load_source, make_data
    from search.recipe.model import check_weights
    from search.recipe.network import Networks
    from search.recipe.train import train

    e = stage_epochs
    config = TrainConfig.load(SEED_CONFIG).replace(
        head_epochs=e, finetune_epochs=e, unfreeze_depth=20, stage_lrs=(1e-4, 5e-5, 2e-5, 1e-5),
        early_stop_patience=10 * e).replace(**opts.overrides())
    check_weights(config.weights)
    data = make_data(load_source(opts.data_dir), config.train_samples, config.val_samples,
                     config.split_seed)
    log(f"bench: {len(data.x_train)} train / {len(data.x_val)} val images at "
        f"{config.image_size}px, weights {config.weights}, {e} epochs per stage, "
        f"{opts.aug_views} views" + (", stage programs compiled with XLA" if opts.xla else ""))
    quiet = lambda *_: None  # noqa: E731
    live = None if skip_live else train(config, data, log=quiet)
    cache = FeatureCache(None, views=opts.aug_views, dtype=opts.cache_dtype, xla=opts.xla)
    stages = cached_stages(cache, 20)
    networks = Networks()  # as in a new worker: the 1st trial builds and traces
    first = train(config, data, log=quiet, stages=stages, networks=networks)  # fills the cache
    fill = cache.stats.fill_seconds
    clock = EpochClock()
    cached = train(config, data, log=quiet, stages=stages, callbacks=[clock.callback],
                   networks=networks)
    # A new worker's first trial on the filled cache: it builds its network and traces again.
    fresh = train(config, data, log=quiet, stages=stages, networks=Networks())
    out = CacheBench((len(data.x_train), len(data.x_val)), config,
                     [s.depth for s in cached.stages], [s.epochs for s in cached.stages],
                     _seconds(live) if live else None, _seconds(first), _seconds(cached), fill,
                     cache.memory_bytes / 2**20, {"cached": cached.val_accuracy},
                     fresh=_seconds(fresh), steady=clock.fastest(cached))
    if fresh.val_accuracy != cached.val_accuracy and not opts.xla:  # XLA: other dropout masks
        raise AssertionError(f"a reused network gave val accuracy {cached.val_accuracy}, a new "
                             f"one {fresh.val_accuracy}: they must agree exactly")
    if live is not None:
        out.val_accuracy["no cache"] = live.val_accuracy
    if not skip_float16:
        other = "float16" if opts.cache_dtype == "float32" else "float32"
        half = FeatureCache(None, views=opts.aug_views, dtype=other)
        r = train(config, data, log=quiet, stages=cached_stages(half, 20))
        out.other_dtype = {"dtype": other, "val_accuracy": r.val_accuracy,
                           "memory_mib": half.memory_bytes / 2**20,
                           "fill_seconds": half.stats.fill_seconds, "seconds": sum(_seconds(r))}
    return out


def format_cache_bench(b: CacheBench) -> str:
    """Per stage: [no cache,] 1st trial, cached, then the ratio (or, without the live run, the
    cached seconds per epoch); the same columns summed in the last row."""
    cols = [("1st trial (s)", b.first), ("cached (s)", b.cached)]
    if b.live is not None:
        cols.insert(0, ("no cache (s)", b.live))
    lines = [f"{'stage':<7}{'layers open':>12}" + "".join(f"{n:>15}" for n, _ in cols)
             + ("   ratio" if b.live else "  s/epoch")]
    rows = [(str(i), str(d), [v[i] for _, v in cols], n)
            for i, (d, n) in enumerate(zip(b.depths, b.epochs))]
    rows.append(("all", "", [sum(v) for _, v in cols], None))
    for name, depth, vals, epochs in rows:
        last = (f"{vals[0] / max(vals[-1], 1e-9):>7.1f}x" if b.live
                else f"{vals[-1] / epochs:>9.2f}" if epochs else "")
        lines.append(f"{name:<7}{depth:>12}" + "".join(f"{v:>15.1f}" for v in vals) + last)
    lines.append(f"cache fill (once per study, inside the 1st trial): {b.fill_seconds:.1f}s; cache "
                 f"memory {b.memory_mib:.0f} MiB"
                 + (f"; 1st trial {sum(b.live) / sum(b.first):.1f}x faster than no cache"
                    if b.live else ""))
    lines.append("val accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in
                                              sorted(b.val_accuracy.items(), reverse=True)))
    if b.steady:
        lines.append("")
        lines.append(format_fixed_costs(b))
    if b.other_dtype:
        o = b.other_dtype
        lines.append(f"cached as {o['dtype']}: val accuracy {o['val_accuracy']:.4f}, memory "
                     f"{o['memory_mib']:.0f} MiB, fill {o['fill_seconds']:.1f}s, "
                     f"training {o['seconds']:.1f}s")
    return "\n".join(lines)


def format_fixed_costs(b: CacheBench) -> str:
    """Per stage, seconds outside the epochs' compute: in the 1st trial (which fills the cache and
    traces the programs), a later trial reusing them, and a new worker's 1st trial on the filled
    cache (it builds its network and traces)."""
    cols = [("1st trial", b.fixed(b.first)), ("later, reused", b.fixed(b.cached)),
            ("new worker, cache filled", b.fixed(b.fresh))]
    lines = ["fixed cost per stage (s; a stage's time less its epochs at its fastest epoch's rate)",
             f"{'stage':<7}{'layers open':>12}{'s/epoch':>9}" + "".join(f"{n:>18}" for n, _ in cols)]
    for i, depth in enumerate(b.depths):
        lines.append(f"{i:<7}{depth:>12}{b.steady[i]:>9.2f}"
                     + "".join(f"{v[i]:>18.2f}" for _, v in cols))
    lines.append(f"{'all':<7}{'':>12}{'':>9}" + "".join(f"{sum(v):>18.2f}" for _, v in cols))
    return "\n".join(lines)


def bench_study(opts: SearchOptions, live_seconds_per_epoch: float = float("nan")) -> str:
    """A full study plus its retrain in a temporary results folder; returns the summary line."""
    tmp = tempfile.mkdtemp(prefix="bench-study-")
    try:
        run = dataclasses.replace(opts, results_dir=tmp, cache_dir=None, storage=None)
        out = run_search(run)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    states = dict(Counter(out.table["state"])) if len(out.table) else {}
    return (f"full study of {len(out.table)} trials {states} + retrain: {out.seconds / 60:.1f} min "
            f"wall; {out.epochs} trial epochs, which without the cache would take about "
            f"{out.epochs * live_seconds_per_epoch / 60:.0f} min at the live rate above")
