"""The search: spaces, backends and the study loop. Training is reached only through
search.recipe.train.train and Keras callbacks; the oracle never fits.

    space.py         search spaces (spaces/*.yaml): loaded, validated, backend-neutral
    records.py       what a trial leaves, for every backend: per-stage attrs, trial and artifact folders
    retrain.py       backend-neutral: retrain the best config over seeds, test it once, write it
    worker.py        trials in a reused child process (TensorFlow leaks per model otherwise)
    storage.py       storage URLs, opening them, heartbeats, loading a study by name
    optuna_space.py  the Optuna adapter of a space
    objective.py     Optuna trial -> TrainConfig -> train -> val accuracy (pruning, notes, artifacts)
    study.py         samplers, pruners, resume checks, the seed trial, the run loop, finalize
    kt_backend.py    the KerasTuner adapter: same space, same training
"""
