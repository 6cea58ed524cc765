"""Search quality at equal wall time: several search settings, each repeated with other sampler
seeds, on one split and one frozen-part cache, so that only the search differs.

The seed recipe is retrained and tested first (which fills the shared cache, so that no timed run
pays for it); then every setting's first repeat runs, then every setting's second, and so on (so
that a slow spell of the machine falls on all alike): each a search of `minutes` (no new trial
after that) without its own final step, whose best config is retrained on the same seeds and tested.
Returns the best-so-far validation accuracy against minutes of every run, and the
table of best validation and test accuracy per setting (mean and spread over repeats) next to the
seed recipe; writes quality.csv, quality.png and runs.json under <results-dir>/quality/.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from search.errors import SearchFailed, UserError
from search.files import save_figure, write_atomic, write_json
from search.jobs import load_data, run_search, search_runner
from search.options import SearchOptions
from search.tuning.space import SPACES_DIR


@dataclass(frozen=True)
class Setting:
    name: str
    sampler: str = "tpe"
    pruner: str = "hyperband"
    space: str | None = None  # None: the options' space


CONV5 = str(SPACES_DIR / "conv5.yaml")
LR_DECAY = str(SPACES_DIR / "lr-decay.yaml")
WEIGHT_DECAY = str(SPACES_DIR / "weight-decay.yaml")
SETTINGS = {s.name: s for s in (
    Setting("stage", pruner="stage"),  # the default since #13
    Setting("stage-late", pruner="stage-late"),
    Setting("prior", sampler="prior", pruner="stage"),  # around the seed recipe and the incumbent
    Setting("lr-decay", pruner="stage", space=LR_DECAY),
    Setting("lr-decay-late", pruner="stage-late", space=LR_DECAY),
    Setting("weight-decay", pruner="stage", space=WEIGHT_DECAY),
    Setting("stage-median", pruner="stage-median"),
    Setting("old-default", pruner="hyperband", space=CONV5),  # the default before #13
    Setting("hyperband"), Setting("median", pruner="median"), Setting("sha", pruner="sha"),
    Setting("random-stage", sampler="random", pruner="stage"),
    Setting("tpe-none", pruner="none"), Setting("random-none", sampler="random", pruner="none"))}


@dataclass
class Run:
    setting: str
    repeat: int
    curve: list[tuple[float, float]]  # (minutes since the run's first trial, best val so far)
    trials: int
    completed: int
    best_value: float | None
    best_trial: int | None
    test: list[float] = field(default_factory=list)  # test accuracy per retrain seed


@dataclass
class Quality:
    runs: list[Run]
    baseline_test: list[float]  # the seed recipe, retrained on the same seeds
    minutes: float

    def table(self) -> pd.DataFrame:
        rows = []
        base = np.mean(self.baseline_test) if self.baseline_test else np.nan
        for name in dict.fromkeys(r.setting for r in self.runs):
            runs = [r for r in self.runs if r.setting == name]
            val = [r.best_value for r in runs if r.best_value is not None]
            test = [np.mean(r.test) for r in runs if r.test]
            rows.append({"setting": name, "repeats": len(runs),
                         "trials": np.mean([r.trials for r in runs]),
                         "completed": np.mean([r.completed for r in runs]),
                         "best_val_mean": _mean(val), "best_val_spread": _spread(val),
                         "test_mean": _mean(test), "test_spread": _spread(test),
                         "test_gain_over_seed_recipe": _mean(test) - base})
        rows.append({"setting": "seed recipe", "repeats": len(self.baseline_test),
                     "test_mean": base, "test_spread": _spread(self.baseline_test)})
        return pd.DataFrame(rows)


def _mean(v) -> float:
    return float(np.mean(v)) if len(v) else float("nan")


def _spread(v) -> float:
    return float(np.max(v) - np.min(v)) if len(v) else float("nan")


def to_retrain(runs: list[Run], mode: str) -> list[Run]:
    """The runs whose best is retrained and tested: every run with a result ("all"), or per
    setting the run with the highest best val accuracy ("best": a deep retrain costs minutes a
    seed, so this keeps the benchmark at about an hour)."""
    done = [r for r in runs if r.best_value is not None]
    if mode == "all":
        return done
    if mode != "best":
        raise UserError(f"--retrain must be 'all' or 'best', not {mode!r}.")
    top: dict[str, Run] = {}
    for r in done:
        if r.setting not in top or r.best_value > top[r.setting].best_value:
            top[r.setting] = r
    return list(top.values())


def bench_quality(opts: SearchOptions, settings: list[Setting], repeats: int, minutes: float,
                  retrain_seeds: int = 3, log=print, retrain_runs: str = "all") -> Quality:
    from search.runner.pool import closing_on_interrupt
    from search.tuning.retrain import retrain
    from search.tuning.space import load_space
    from search.tuning.storage import open_study
    from search.tuning.study import best_config

    if repeats < 1 or minutes <= 0 or retrain_seeds < 1 or not settings:
        raise UserError("quality needs --repeats and --retrain-seeds of at least 1, --minutes "
                        "above 0 and at least one setting.")
    to_retrain([], retrain_runs)  # a wrong mode fails before any run
    root = Path(opts.results_dir) / "quality"
    common = dataclasses.replace(opts, cache_dir=opts.cache_dir or str(root / "cache"),
                                 trials=100_000, timeout=minutes * 60, no_final=True, storage=None)
    space = load_space(opts.space).with_base(**opts.overrides())
    _, data = load_data(opts, space.base)
    cache = common.make_cache()

    def runner():  # the retrains' workers, as a search's (ended after each retrain)
        return closing_on_interrupt(search_runner(common, data, cache, space.max_depth(),
                                                  common.jobs_to_run()))
    # The seed recipe first: its retrain fills the shared cache (the deepest boundary and most
    # stage boundaries), so no timed run pays the fill.
    log(f"seed recipe: retraining on {retrain_seeds} seed(s), filling the cache")
    with runner() as r:
        base = retrain(space.base, data, retrain_seeds, root / "seed_recipe", "seed_recipe", r,
                       lambda *_: None)
    runs: list[Run] = []
    urls: dict[tuple[str, int], str] = {}
    # Repeat-major, so that a slow spell of the machine falls on every setting alike.
    for r in range(repeats):
        for s in settings:
            run = dataclasses.replace(common, results_dir=str(root / s.name), study_name=f"r{r}",
                                      sampler=s.sampler, pruner=s.pruner, sampler_seed=r,
                                      space=s.space or opts.space)
            log(f"\n== {s.name}, repeat {r + 1}/{repeats}: {minutes:g} min")
            try:
                run_search(run)
            except SearchFailed as e:  # nothing completed in the budget: a result too
                log(f"   {e}")
            urls[s.name, r] = run.storage_url()
            runs.append(_run_of(open_study(run.study_name, urls[s.name, r]), s.name, r))
    for run in to_retrain(runs, retrain_runs):
        log(f"retraining the best of {run.setting} r{run.repeat} on {retrain_seeds} seed(s)")
        _, config = best_config(open_study(f"r{run.repeat}", urls[run.setting, run.repeat]))
        with runner() as r:
            res = retrain(config, data, retrain_seeds,
                          root / run.setting / f"r{run.repeat}-retrain", "best", r, lambda *_: None)
        run.test = res["test_accuracy"]
    out = Quality(runs, base["test_accuracy"], minutes)
    write_atomic(root / "quality.csv", out.table().to_csv(index=False))
    write_json(root / "runs.json", {"minutes": minutes, "baseline_test": out.baseline_test,
                                    "runs": [dataclasses.asdict(r) for r in runs]})
    plot(out, root / "quality.png")
    return out


def _run_of(study, setting: str, repeat: int) -> Run:
    from optuna.trial import TrialState

    from search.report.plots import best_so_far

    trials = [t for t in study.trials if t.datetime_complete]
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    top = max(done, key=lambda t: t.value) if done else None
    return Run(setting, repeat, best_so_far(trials), len(trials), len(done), top and top.value,
               top and top.number)


def plot(q: Quality, path: Path) -> Path:
    """Best-so-far val accuracy against minutes: mean over repeats, band from min to max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0, max([q.minutes] + [r.curve[-1][0] for r in q.runs if r.curve]), 200)
    fig, ax = plt.subplots(figsize=(10, 6), dpi=100)
    for name in dict.fromkeys(r.setting for r in q.runs):
        ys = np.array([_step(r.curve, grid) for r in q.runs if r.setting == name])
        with warnings.catch_warnings():  # all-NaN columns: before any run of it has a result
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, low, high = np.nanmean(ys, axis=0), np.nanmin(ys, axis=0), np.nanmax(ys, axis=0)
        ax.plot(grid, mean, lw=2, label=name)
        ax.fill_between(grid, low, high, alpha=0.2)
    ax.axvline(q.minutes, color="grey", ls="--", lw=1, label="budget (no new trial after)")
    ax.set_xlabel("minutes since the first trial started")
    ax.set_ylabel("best val accuracy so far (line: mean over repeats; band: min to max)")
    ax.set_title(f"Search quality at equal wall time ({len(q.runs)} runs)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def _step(curve: list[tuple[float, float]], grid: np.ndarray) -> np.ndarray:
    """The best-so-far curve as a step function on the grid (NaN before its first result)."""
    out = np.full(len(grid), np.nan)
    for minute, best in curve:
        out[grid >= minute] = best
    return out
