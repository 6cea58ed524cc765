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
  best_seed_<s>/, seed_recipe_seed_<s>/   each retrain's config, command, history and curves
The test set is only ever scored here, after every choice has been made on validation data.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from search.files import atomic_path, write_json
from search.process import check_interrupt
from search.recipe.config import TrainConfig
from search.recipe.data import Data
from search.recipe.evaluate import format_metrics, metrics, predict_probs
from search.recipe.network import Networks
from search.recipe.run_dir import save_model, write_history, write_start
from search.recipe.train import train
from search.tuning.records import new_final_dir, publish_final

MISTAKES = 32  # test mistakes kept for the report


def retrain(config: TrainConfig, data: Data, seeds: int, out_dir: Path, label: str,
            log=print, stages=None, model_path: Path | None = None,
            networks: Networks | None = None) -> dict:
    """Train `config` with seeds config.seed .. +seeds-1 on the same split; test each once.
    `stages`: what each stage fits on (search.recipe.train.StageSource; default the live recipe).

    With model_path, the model of the seed with the best validation accuracy is saved there.
    `networks`: reused across seeds (default: one for this retrain)."""
    networks = networks or Networks()
    runs, best_val = [], -math.inf
    for i in range(seeds):
        cfg = config.replace(seed=config.seed + i)
        run_dir = out_dir / f"{label}_seed_{cfg.seed}"
        write_start(run_dir, cfg)
        log(f"retraining {label} with seed {cfg.seed} ({i + 1}/{seeds})")
        result = train(cfg, data, log=log, stages=stages, networks=networks)
        check_interrupt()  # a Ctrl-C that TensorFlow swallowed ends the retrain here
        write_history(run_dir, result.history)
        probs = predict_probs(result.model, data.x_test)
        m = metrics(np.asarray(data.y_test), probs.argmax(axis=1), data.class_names)
        runs.append({"seed": cfg.seed, "val_accuracy": result.val_accuracy,
                     "test_accuracy": m["accuracy"], "seconds": round(result.seconds, 1),
                     "per_class_accuracy": m["per_class_accuracy"],
                     "confusion_matrix": m["confusion_matrix"]})
        if result.val_accuracy > best_val:  # keep the model chosen by validation, not test
            best_val = result.val_accuracy
            if model_path is not None:
                save_model(result.model, model_path, data.class_names, export=True)
                save_mistakes(model_path.with_name("misclassified.npz"), data, probs)
    acc = np.array([r["test_accuracy"] for r in runs])
    chosen = max(runs, key=lambda r: r["val_accuracy"])
    return {
        "seeds": [r["seed"] for r in runs],
        "val_accuracy": [r["val_accuracy"] for r in runs],
        "test_accuracy": acc.tolist(),
        "test_accuracy_mean": float(acc.mean()),
        "test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
        "per_class_accuracy_mean": {
            k: float(np.mean([r["per_class_accuracy"][k] for r in runs]))
            for k in data.class_names},
        "saved_model_seed": chosen["seed"],
        "saved_model": {"accuracy": chosen["test_accuracy"],
                        "per_class_accuracy": chosen["per_class_accuracy"],
                        "confusion_matrix": chosen["confusion_matrix"],
                        "class_names": list(data.class_names), "n": int(len(data.y_test))},
        "runs": runs,
    }


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
                    study_dir: Path, seeds: int = 1, log=print, stages=None,
                    baseline_config: TrainConfig | None = None,
                    seed_value: float | None = None, extra: dict | None = None) -> dict:
    """Retrain the best config over seeds, test it once, and write best_config.yaml,
    best_model.keras (+ a SavedModel), classes.json, misclassified.npz and test_metrics.json into a
    fresh folder that is then published in one step (search.tuning.records.publish_final): an
    interrupted or concurrent finalize never leaves a mix of two runs (any search backend)."""
    log(f"best trial {number}: val_accuracy {value:.4f}; retraining {seeds}x")
    folder = new_final_dir(study_dir)
    networks = Networks()  # one network per structure for every retrain below
    config.save(folder / "best_config.yaml")
    out = {"study": name, "best_trial": number, "best_trial_value": value,
           "config": config.to_dict(), "final_run": folder.name,
           **retrain(config, data, seeds, folder, "best", log, stages,
                     model_path=folder / "best_model.keras", networks=networks)}
    if seed_value is not None:
        out["seed_recipe_trial_value"] = seed_value
    out.update(extra or {})
    if baseline_config is not None:
        b = retrain(baseline_config, data, seeds, folder, "seed_recipe", log, stages,
                    networks=networks)
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
