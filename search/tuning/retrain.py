"""After the search (any backend): retrain the best config over seeds, score it once on the test set.

`finalize_config` writes everything into a fresh folder <study dir>/final/<run>/, then publishes it
in one step (search.tuning.records.publish_final: the `best` link and the top-level names):
  best_config.yaml        the best trial's full config (what `train --config` reads)
  best_model.keras        the retrained model with the highest *validation* accuracy (+ its
                          TensorFlow SavedModel export, best_model_savedmodel/)
  classes.json            class names in label order
  test_metrics.json       test accuracy per seed, mean ± std, per-class accuracy, confusion matrix
                          (and the seed recipe's, retrained on the same seeds, when asked)
  misclassified.npz       the saved model's most confident test mistakes, for the report's grid
  best_seed_<s>/, seed_recipe_seed_<s>/   each retrain's config, command, metrics, history, curves
  pick/                   the pick's re-runs that no retrain took (search.tuning.pick)
The retrains run on the search's runner (its workers, side by side), on the trials' cache, and a
retrain on a seed the pick already ran takes that run (search.tuning.final_runs) instead of
training it again. The test set is only ever scored here, after every choice has been made on
validation data: each kept model is loaded (safe mode) and scored once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from search.files import atomic_path, write_json
from search.process import check_interrupt
from search.recipe.config import TrainConfig
from search.recipe.data import Data
from search.recipe.evaluate import format_metrics, load_model, metrics, predict_probs
from search.recipe.run_dir import export_savedmodel
from search.tuning.final_runs import FinalRun, Kept, Plan, run_all
from search.tuning.records import new_final_dir, publish_final

MISTAKES = 32  # test mistakes kept for the report


def retrain_runs(jobs: list[tuple[str, TrainConfig, int | None]], seeds: int, out_dir: Path,
                 runner, kept: Kept | None = None, log=print) -> dict[str, list[FinalRun]]:
    """Each (label, config, trial number) on seeds config.seed .. +seeds-1, in <label>_seed_<s>/:
    the trial's own run or the pick's of that trial and seed when `kept` has it, else a run on
    `runner` (side by side on its workers). By label, in seed order."""
    plans, runs = [], {}
    for label, config, number in jobs:
        for i in range(seeds):
            cfg = config.replace(seed=config.seed + i)
            run_dir = out_dir / f"{label}_seed_{cfg.seed}"
            run = None
            if kept is not None and number is not None and (number, cfg.seed) in kept:
                run = kept.take((number, cfg.seed), run_dir)  # None: taken by another finalize
            if run is not None:
                runs[label, cfg.seed] = run
                log(f"{label} on seed {cfg.seed}: the {run.reused}'s run, kept (val accuracy "
                    f"{run.val_accuracy:.4f})")
            else:
                plans.append(Plan(label, cfg, run_dir,
                                  f"retraining {label} with seed {cfg.seed} ({i + 1}/{seeds})"))
    for plan, run in zip(plans, run_all(plans, runner, log)):
        runs[plan.label, plan.config.seed] = run
    check_interrupt()  # a Ctrl-C that TensorFlow swallowed ends the retrain here
    return {label: [runs[label, config.seed + i] for i in range(seeds)]
            for label, config, _ in jobs}


def score(runs: list[FinalRun], data: Data, model_path: Path | None = None) -> dict:
    """Each run's model scored once on the test set (then deleted: the folders keep the rest).
    With model_path, the model of the run with the best validation accuracy is moved there (with
    classes.json, a SavedModel export and its test mistakes beside it)."""
    out = []
    chosen = max(runs, key=lambda r: (r.val_accuracy, -r.seed))  # by validation, never test
    for r in runs:
        model = load_model(r.model)
        probs = predict_probs(model, data.x_test)
        m = metrics(np.asarray(data.y_test), probs.argmax(axis=1), data.class_names)
        out.append({"seed": r.seed, "val_accuracy": r.val_accuracy, "test_accuracy": m["accuracy"],
                    "seconds": round(r.seconds, 1), "reused": r.reused,
                    "per_class_accuracy": m["per_class_accuracy"],
                    "confusion_matrix": m["confusion_matrix"]})
        if r is chosen and model_path is not None:
            os.replace(r.model, model_path)  # the very file scored: a rename in the final folder
            write_json(model_path.with_name("classes.json"), list(data.class_names))
            export_savedmodel(model, model_path)
            save_mistakes(model_path.with_name("misclassified.npz"), data, probs)
        r.drop_model()
        del model
    acc = np.array([r["test_accuracy"] for r in out])
    best = next(r for r in out if r["seed"] == chosen.seed)
    return {
        "seeds": [r["seed"] for r in out],
        "val_accuracy": [r["val_accuracy"] for r in out],
        "test_accuracy": acc.tolist(),
        "test_accuracy_mean": float(acc.mean()),
        "test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
        "per_class_accuracy_mean": {
            k: float(np.mean([r["per_class_accuracy"][k] for r in out]))
            for k in data.class_names},
        "saved_model_seed": chosen.seed,
        "saved_model": {"accuracy": best["test_accuracy"],
                        "per_class_accuracy": best["per_class_accuracy"],
                        "confusion_matrix": best["confusion_matrix"],
                        "class_names": list(data.class_names), "n": int(len(data.y_test))},
        "runs": out,
    }


def retrain(config: TrainConfig, data: Data, seeds: int, out_dir: Path, label: str, runner,
            log=print) -> dict:
    """Train `config` with seeds config.seed .. +seeds-1 on the same split, on `runner`; test each
    model once (see score)."""
    runs = retrain_runs([(label, config, None)], seeds, out_dir, runner, log=log)
    return score(runs[label], data)


def save_mistakes(path: Path, data: Data, probs: np.ndarray, n: int = MISTAKES) -> None:
    """The n most confident wrong predictions on the test set, written atomically."""
    pred, y = probs.argmax(axis=1), np.asarray(data.y_test)
    wrong = np.flatnonzero(pred != y)
    conf = probs[wrong, pred[wrong]]
    idx = wrong[np.argsort(-conf, kind="stable")[:n]]
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, images=data.x_test[idx], index=idx, true=y[idx], pred=pred[idx],
                            confidence=probs[idx, pred[idx]], class_names=np.array(data.class_names))


def finalize_config(name: str, number: int, value: float, config: TrainConfig, data: Data,
                    study_dir: Path, runner, seeds: int = 1, log=print,
                    baseline_config: TrainConfig | None = None, baseline_number: int | None = None,
                    seed_value: float | None = None, extra: dict | None = None,
                    folder: Path | None = None, kept: Kept | None = None) -> dict:
    """Retrain the best config (trial `number`) over seeds on `runner`, test it once, and write
    best_config.yaml, best_model.keras (+ a SavedModel), classes.json, misclassified.npz and
    test_metrics.json into a fresh folder (`folder`, where the pick kept its runs, or a new one)
    that is then published in one step (search.tuning.records.publish_final): an interrupted or
    concurrent finalize never leaves a mix of two runs (any search backend).

    The runner's workers are ended once the runs are done, so that their memory is free before the
    models are loaded here (a later run would start fresh ones)."""
    log(f"best trial {number}: val_accuracy {value:.4f}; retraining {seeds}x")
    folder = folder or new_final_dir(study_dir)
    config.save(folder / "best_config.yaml")
    jobs = [("best", config, number)]
    if baseline_config is not None:
        jobs.append(("seed_recipe", baseline_config, baseline_number))
    runs = retrain_runs(jobs, seeds, folder, runner, kept, log)
    runner.close()
    if kept is not None:
        kept.discard_models()
    out = {"study": name, "best_trial": number, "best_trial_value": value,
           "config": config.to_dict(), "final_run": folder.name,
           **score(runs["best"], data, model_path=folder / "best_model.keras")}
    if seed_value is not None:
        out["seed_recipe_trial_value"] = seed_value
    out.update(extra or {})
    if baseline_config is not None:
        b = score(runs["seed_recipe"], data)
        out["seed_recipe"] = {k: b[k] for k in ("seeds", "val_accuracy", "test_accuracy",
                                                "test_accuracy_mean", "test_accuracy_std")}
    write_json(folder / "test_metrics.json", out)
    publish_final(study_dir, folder)
    log(format_metrics(out["saved_model"]))
    line = (f"retrained best (trial {number}): test accuracy {out['test_accuracy_mean']:.4f}"
            f" ± {out['test_accuracy_std']:.4f} over {seeds} seed(s)")
    if "seed_recipe" in out:
        sr = out["seed_recipe"]
        line += (f"; seed recipe: {sr['test_accuracy_mean']:.4f} ± {sr['test_accuracy_std']:.4f}")
    log(line)
    return out
