"""A final pick that survives validation noise.

With 2,000 validation images, trials a few tenths of a point apart are a coin toss: the best
trial's value is partly its seed's luck. So before the retrain and the test, the top few trials
and the seed recipe are run again on further seeds (validation only; the test set is never
used), and the trial with the best mean wins. When the winner's margin over the seed recipe is
within their seed spread, the output and the report say so.

    candidates(study, top)              the top trials by value, and the seed recipe
    certain(study, top, unended)        those that stay candidates whatever `unended` trials
                                        still to end score (search.tuning.pick_ahead)
    rerun(trials, runner, seeds)        each candidate's val accuracy per seed (its trial's first);
                                        with kept, the runs a retrain will reuse are kept
                                        (search.tuning.final_runs); with done, the runs already
                                        made (search.tuning.pick_ahead) are taken, not run again
    choose(values, seed_trial)          -> Pick, a pure function of those numbers
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.recipe.config import TrainConfig
from search.runner.events import Finished
from search.runner.pool import side_by_side
from search.tuning.final_runs import Kept


@dataclass(frozen=True)
class Pick:
    trial: int  # the winner's number
    mean: float  # its mean val accuracy over seeds
    values: dict[int, list[float]]  # trial number -> val accuracy per seed (the trial's own first)
    seed_trial: int | None  # the seed recipe's trial, when it completed
    margin: float | None  # winner's mean - seed recipe's mean
    spread: float | None  # the larger of the two seed standard deviations
    within_noise: bool  # margin <= spread: the two are not told apart
    ahead: list[list[int]] = field(default_factory=list)  # [trial, seed] of the re-runs made
    # while the last trials ran (search.tuning.pick_ahead)

    def line(self) -> str:
        n = len(self.values[self.trial])
        out = (f"picked trial {self.trial}: val accuracy {self.mean:.4f} averaged over {n} seeds "
               f"({len(self.values)} candidates re-run on validation)")
        if self.seed_trial is not None and self.seed_trial != self.trial:
            out += (f"; {self.margin:+.4f} over the seed recipe (trial {self.seed_trial}), seed "
                    f"spread {self.spread:.4f}")
            if self.within_noise:
                out += ": within the seed spread, so not a clear gain over the seed recipe"
        elif self.seed_trial == self.trial:
            out += "; it is the seed recipe itself"
        if self.ahead:
            out += (f". {len(self.ahead)} of the re-runs ran while the last trials did, on "
                    "workers they left idle")
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["values"] = {str(k): v for k, v in self.values.items()}
        return d


def candidates(study: optuna.Study, top: int) -> list[FrozenTrial]:
    """The `top` completed trials by value, and the seed recipe (trial 0) when it completed."""
    done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                  key=lambda t: (-t.value, t.number))
    chosen = done[:max(top, 1)]
    seed = next((t for t in done if t.user_attrs.get("seed_recipe")), None)
    if seed is not None and seed not in chosen:
        chosen.append(seed)
    return chosen


def certain(study: optuna.Study, top: int, unended: int) -> list[FrozenTrial]:
    """The candidates (see `candidates`) that stay candidates whatever the `unended` trials still
    to end score: each of them can push a completed trial down by one place at most, so the best
    `top` - `unended`, and the seed recipe."""
    chosen = candidates(study, top)
    sure = chosen[:max(max(top, 1) - unended, 0)]
    return sure + [t for t in chosen if t.user_attrs.get("seed_recipe") and t not in sure]


def rerun_one(runner, trial: FrozenTrial, i: int, kept: Kept | None = None, log=print,
              note: str = "") -> float:
    """`trial`'s config on its seed + `i`, run on `runner`: its val accuracy (NaN when it
    diverged). With `kept` and i <= kept.seeds, the run keeps its folder and model there."""
    config = TrainConfig.from_dict(trial.user_attrs["config"], source=f"trial {trial.number}")
    config = config.replace(seed=config.seed + i)
    if kept is not None and i <= kept.seeds:
        run = kept.run(runner, config, trial.number)
        value = run.val_accuracy if run is not None else float("nan")
    else:
        outcome = runner.run(config)
        value = outcome.value if isinstance(outcome, Finished) else float("nan")
    log(f"  trial {trial.number} on seed {config.seed}: val accuracy {value:.4f}{note}")
    return value


def rerun(trials: list[FrozenTrial], runner, seeds: int, log=print, kept: Kept | None = None,
          done: dict[tuple[int, int], float] | None = None) -> dict[int, list[float]]:
    """Each trial's val accuracy on its own seed (its value) and on `seeds` further seeds, run on
    `runner` (several at once when it is a pool of workers). With `kept`, the runs on the first
    `kept.seeds` further seeds keep their folder and model there, for the retrain. `done`:
    values already run, by (trial number, i) for seed + i; those are not run again."""
    got = dict(done or {})
    jobs = [(t, i) for t in trials for i in range(1, seeds + 1) if (t.number, i) not in got]
    found = side_by_side(runner, lambda job: rerun_one(runner, *job, kept=kept, log=log), jobs)
    got.update({(t.number, i): value for (t, i), value in zip(jobs, found)})
    return {t.number: [float(t.value), *(got[t.number, i] for i in range(1, seeds + 1))]
            for t in trials}


def choose(values: dict[int, list[float]], seed_trial: int | None) -> Pick:
    """The candidate with the best mean val accuracy (ties: the lower number), and how it stands
    against the seed recipe's spread over seeds. NaN runs (a diverged seed) count as 0."""
    clean = {k: [v if v == v else 0.0 for v in vs] for k, vs in values.items()}
    means = {k: statistics.fmean(vs) for k, vs in clean.items()}
    winner = min(means, key=lambda k: (-means[k], k))
    margin = spread = None
    within = False
    if seed_trial is not None and seed_trial in clean and seed_trial != winner:
        margin = means[winner] - means[seed_trial]
        spread = max(_std(clean[winner]), _std(clean[seed_trial]))
        within = margin <= spread
    return Pick(winner, means[winner], values, seed_trial if seed_trial in values else None,
                margin, spread, within)


def _std(v: list[float]) -> float:
    return statistics.stdev(v) if len(v) > 1 else 0.0
