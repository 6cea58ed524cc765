"""How well a trial's early signal ranks trials as their full training does (issue #21, item 2).

For a study whose trials all ran to the end (`--pruner none`), each candidate signal is computed
for every completed trial and rank-correlated (Spearman) with its final value (its best val
accuracy over all stages), with what the signal costs: the mean share of a trial's time spent
before it is known.
  stage k     the best val accuracy at the end of stage k (or the final value, for a trial with
              fewer stages): what `--pruner stage` sees, at its rungs k = 1, 2
  epoch e     the val accuracy after e epochs (step e - 1, or the trial's last, if shorter):
              what the per-epoch pruners see (Hyperband's rungs on this space: 2 and 6 epochs)
  same depth  stage k, ranked only among trials with the same number of stages (the mean of the
              groups' Spearman, weighted by their sizes): comparisons that never put a shallow
              recipe against a deep one
A trial with k stages or fewer is done at stage k, so its signal there is its final value; the
"among them" columns take only the trials that go on past stage k, where the signal is a guess
(and the share of their time is what stopping them there would save).

    python -m search.bench.fidelity --storage sqlite:///results/optuna.db --study-name NAME
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from optuna.trial import TrialState


def signals(study) -> pd.DataFrame:
    """One row per completed trial: final value, stage count, stage-end bests, per-epoch values,
    and the seconds spent up to each stage end."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        best = np.maximum.accumulate(np.array(t.user_attrs.get("stage_best_val", []), float))
        secs = np.cumsum(np.array(t.user_attrs.get("stage_seconds", []), float))
        if len(best) == 0:
            continue
        row = {"number": t.number, "value": t.value, "stages": len(best), "seconds": secs[-1]}
        for k in range(4):
            row[f"stage {k}"] = best[min(k, len(best) - 1)]
            row[f"stage {k} s"] = secs[min(k, len(secs) - 1)]
        steps = t.intermediate_values
        for e in (1, 2, 4, 6):  # the e-th epoch: step e - 1
            done = [s for s in steps if s <= e - 1]
            row[f"epoch {e}"] = steps[max(done)] if done else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's rank correlation; NaN where either side has a single value (no ranking)."""
    ok = a.notna() & b.notna()
    if a[ok].nunique() < 2 or b[ok].nunique() < 2:
        return np.nan
    return float(a[ok].corr(b[ok], method="spearman"))


def table(df: pd.DataFrame) -> pd.DataFrame:
    out = []
    for k in range(1, 4):
        col = f"stage {k}"
        groups = [(len(g), spearman(g[col], g["value"]))
                  for _, g in df.groupby("stages") if len(g) >= 3 and g[col].nunique() > 1]
        groups = [(n, r) for n, r in groups if r == r]
        same = (sum(n * r for n, r in groups) / sum(n for n, _ in groups)) if groups else np.nan
        deeper = df[df["stages"] > k + 1]  # trials that go on past stage k
        out.append({"signal": f"end of stage {k}", "spearman": spearman(df[col], df["value"]),
                    "same depth only": same, "trials going on": len(deeper),
                    "spearman among them": spearman(deeper[col], deeper["value"]),
                    "share of their time": float((deeper[f"stage {k} s"] / deeper["seconds"]).mean())})
    for e in (1, 2, 4, 6):
        col = f"epoch {e}"
        out.append({"signal": f"val acc after {e} epochs",
                    "spearman": spearman(df[col], df["value"]), "same depth only": np.nan,
                    "trials going on": np.nan, "spearman among them": np.nan,
                    "share of their time": np.nan})
    return pd.DataFrame(out)


def main(argv=None) -> None:
    import optuna

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--storage", required=True)
    p.add_argument("--study-name", required=True)
    args = p.parse_args(argv)
    df = signals(optuna.load_study(study_name=args.study_name, storage=args.storage))
    print(f"{len(df)} completed trials; stages per trial: "
          f"{df['stages'].value_counts().sort_index().to_dict()}")
    print(table(df).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
