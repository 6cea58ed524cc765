"""The prior sampler against TPE alone on a toy objective (4 params; the distance to an optimum
in the unit cube), over seeds: with the optimum at the prior (20 trials) and far from it (45).
Not a search benchmark, a check of the mechanism: `python -m search.bench.prior_toy`."""

from __future__ import annotations

import math
import warnings

import numpy as np
import optuna

from search.tuning.prior import PriorSampler, to_unit

D = {"x": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
     "y": optuna.distributions.FloatDistribution(0.0, 1.0),
     "n": optuna.distributions.IntDistribution(0, 4),
     "w": optuna.distributions.CategoricalDistribution([128, 256, 512, 1024])}
PRIOR = {"x": 1e-3, "y": 0.2, "n": 1, "w": 256}
FAR = {"x": 5e-2, "y": 0.9, "n": 4}


def distance(params: dict, centre: dict) -> float:
    return math.dist([to_unit(D[k], params[k]) for k in ("x", "y", "n")],
                     [to_unit(D[k], centre[k]) for k in ("x", "y", "n")])


def suggest(trial: optuna.Trial) -> dict:
    """The toy's params of `trial`, drawn from D."""
    return {"x": trial.suggest_float("x", 1e-4, 1e-1, log=True), "y": trial.suggest_float("y", 0, 1),
            "n": trial.suggest_int("n", 0, 4), "w": trial.suggest_categorical("w", D["w"].choices)}


def best_distance(sampler, goal: dict, trials: int) -> float:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: 1.0 - distance(suggest(t), goal), n_trials=trials)
    return 1.0 - study.best_value


def main(seeds: int = 8) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")
    for label, goal, trials in (("optimum at the prior", PRIOR, 20),
                                ("optimum far from it", FAR, 45)):
        ours, tpe = [], []
        for seed in range(seeds):
            model = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
            ours.append(best_distance(PriorSampler(PRIOR, model, seed=seed), goal, trials))
            tpe.append(best_distance(optuna.samplers.TPESampler(seed=seed, n_startup_trials=5),
                                     goal, trials))
        wins = sum(a < b for a, b in zip(ours, tpe))
        print(f"{label}, {trials} trials: best distance, median over {seeds} seeds: prior sampler "
              f"{np.median(ours):.3f}, TPE {np.median(tpe):.3f}; prior sampler nearer in "
              f"{wins} of {seeds}")


if __name__ == "__main__":
    main()
