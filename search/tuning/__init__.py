"""The search: spaces, backends and the study loop. Training is reached only through a runner's
events (search.runner) and, for the final retrain, search.recipe.train.train; the oracle never fits.

    space.py         search spaces (spaces/*.yaml): loaded, validated, backend-neutral
    records.py       what a trial leaves, for every backend: per-stage attrs, trial and artifact folders
    retrain.py       backend-neutral: retrain the best config over seeds, test it once, write it
    storage.py       storage URLs, opening them, heartbeats, loading a study by name
    identity.py      what a study was searched on, written once, checked on every join
    optuna_space.py  the Optuna adapter of a space
    objective.py     Optuna trial -> TrainConfig -> a runner's run -> val accuracy (one pruning path)
    study.py         samplers, pruners, resume checks, the seed trial, the run loop, finalize
    pick.py          the final pick: the top trials re-run on further seeds (validation only)
    kt_backend.py    the KerasTuner adapter: same space, same runner
"""
