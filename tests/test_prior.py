"""The prior sampler: the seed recipe's neighbourhood early, the incumbent's once it wins."""

import math

import numpy as np
import optuna

from search.bench.prior_toy import PRIOR, D, suggest
from search.bench.prior_toy import distance as unit
from search.tuning.prior import PriorSampler, from_unit, to_unit


def run(sampler, objective, n):
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: objective(suggest(t)), n_trials=n)
    return study


def tpe(seed):
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)


def test_unit_mapping_round_trips_in_each_param_s_own_scale():
    assert to_unit(D["x"], 1e-4) == 0 and to_unit(D["x"], 1e-1) == 1
    assert math.isclose(to_unit(D["x"], math.sqrt(1e-5)), 0.5)  # log scale: the geometric middle
    assert from_unit(D["n"], 0.49) == 2 and isinstance(from_unit(D["n"], 0.49), int)
    assert math.isclose(from_unit(D["x"], to_unit(D["x"], 3e-3)), 3e-3)


def test_early_trials_lie_around_the_seed_recipe():
    """Flat objective: most of the first 12 trials of the prior sampler are drawn around the seed
    recipe, nearer it than TPE's random start, keeping the recipe's categorical mostly."""
    flat = lambda p: 0.5  # noqa: E731
    ours = PriorSampler(PRIOR, tpe(0), seed=0, warmup=12)
    trials = run(ours, flat, 12).trials
    prior = [t for t in trials if ours.sources[t.number] == "prior"]
    assert len(prior) >= 6
    assert np.median([unit(t.params, PRIOR) for t in prior]) < 0.3
    assert sum(t.params["w"] == PRIOR["w"] for t in prior) >= 0.6 * len(prior)
    near = [unit(t.params, PRIOR) for t in trials]
    far = [unit(t.params, PRIOR) for t in run(tpe(0), flat, 12).trials]
    assert np.median(near) < 0.7 * np.median(far), (near, far)


def test_it_moves_to_the_incumbent_when_the_best_lies_away_from_the_prior():
    """The optimum is far from the seed recipe: the mix shifts from prior to incumbent, and the
    late proposals gather around the best found rather than around the prior."""
    goal = {"x": 5e-2, "y": 0.9, "n": 4}

    def objective(p):
        return 1.0 - unit(p, goal)

    ours = PriorSampler(PRIOR, tpe(1), seed=1)
    study = run(ours, objective, 45)
    w = ours.weights(study)
    assert w["incumbent"] > w["prior"], w
    best = study.best_trial.params
    assert unit(best, goal) < 0.35
    late = study.trials[-15:]
    assert np.median([unit(t.params, best) for t in late]) < np.median(
        [unit(t.params, PRIOR) for t in late])


def test_the_same_seed_proposes_the_same_trials():
    flat = lambda p: p["y"]  # noqa: E731
    a = [t.params for t in run(PriorSampler(PRIOR, tpe(3), seed=3), flat, 15).trials]
    b = [t.params for t in run(PriorSampler(PRIOR, tpe(3), seed=3), flat, 15).trials]
    assert a == b


def test_a_study_of_a_real_space_samples_with_the_prior_around_its_seed_recipe(tmp_path):
    """`--sampler prior` on the default space: the prior is the seed recipe's values (conditional
    stage LRs included), every draw lies in the space, and most early draws keep its depth."""
    from search.tuning.optuna_space import suggest
    from search.tuning.space import load_space
    from search.tuning.study import create_or_resume

    space = load_space("default")
    study, _ = create_or_resume("p", f"sqlite:///{tmp_path / 'o.db'}", space, "prior", "stage", 0)
    sampler = study.sampler
    assert isinstance(sampler, PriorSampler) and sampler.prior == space.seed_values()
    for _ in range(12):
        trial = study.ask()
        values = suggest(trial, space)
        config = space.to_config(values)  # within the space, or this raises
        study.tell(trial, 0.5 + 0.01 * config.n_stages)
    prior = [t for t in study.trials[1:] if sampler.sources.get(t.number) == "prior"]
    assert len(prior) >= 4
    seed = space.seed_values()
    assert sum(t.params["unfreeze_stages"] == seed["unfreeze_stages"] for t in prior) >= len(prior) // 2
