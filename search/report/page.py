"""`python run_search.py report`: what a study found, as files people open.

Writes <study dir>/report/:
  index.html   one page, no server needed (figures beside it): trials by state, best value and
               params next to the seed recipe (trial 0), wall time, the retrained best's test
               accuracy (mean ± std over seeds) with per-class accuracy, every figure, and for a
               figure that cannot be drawn, the sentence saying why
  *.png        see search.report.plots
  trials.csv   study.trials_dataframe() with the per-stage user attrs as columns of their own
And uploads the figures, the retrained best model and its config as Optuna artifacts of the study
(a filesystem store in <study dir>/artifacts; each trial uploads its own curves and history as it
ends), which optuna-dashboard shows with `--artifact-dir`.
"""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path

import matplotlib
import numpy as np
import optuna
import pandas as pd
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import TrialState

from search.files import within, write_atomic
from search.report import plots as rp
from search.tuning.records import STAGE_ATTRS, artifact_dir, final_dir

UPLOADED = "report_artifacts"  # study user attr: file name -> content hash last uploaded


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial; list-valued per-stage attrs spread into stage_<k>_<name> columns."""
    df = study.trials_dataframe(attrs=("number", "value", "state", "datetime_start",
                                       "datetime_complete", "duration", "params", "user_attrs"))
    if study.metric_names:  # the value column is then named after the metric
        df = df.rename(columns={f"value_{study.metric_names[0]}": "value"})
    df = df.drop(columns=[c for c in ("user_attrs_config", "user_attrs_stage_ends") if c in df])
    for attr in STAGE_ATTRS:
        col = f"user_attrs_{attr}"
        if col not in df:
            continue
        short = attr.removeprefix("stage_")
        spread = df[col].apply(lambda v: v if isinstance(v, list) else [])
        for k in range(max((len(v) for v in spread), default=0)):
            df[f"stage_{k}_{short}"] = spread.apply(lambda v, k=k: v[k] if k < len(v) else np.nan)
        df = df.drop(columns=col)
    if "duration" in df:
        df["duration"] = pd.to_timedelta(df["duration"]).dt.total_seconds().round(1)
        df = df.rename(columns={"duration": "seconds"})
    return df


def _histories(study: optuna.Study, n: int = 5) -> list[tuple]:
    done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                  key=lambda t: -t.value)
    runs = []
    for t in done:
        f = Path(t.user_attrs.get("run_dir", "")) / "history.csv"
        if f.is_file():
            runs.append((t.number, t.value, pd.read_csv(f)))
        if len(runs) == n:
            break
    return runs


def make_figures(study: optuna.Study, study_dir: Path, out: Path) -> dict[str, Path | str]:
    """name → the PNG's path, or the sentence why it is absent."""
    final = final_dir(study_dir)
    metrics_file, mistakes_file = final / "test_metrics.json", final / "misclassified.npz"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
    no_final = ("the best config has not been retrained and tested yet (run "
                "`python run_search.py finalize`, or a search without --no-final).")

    def confusion():
        if metrics is None:
            raise rp.Absent(no_final)
        m = metrics["saved_model"]
        return rp.confusion_matrix(m["confusion_matrix"], m["class_names"], out, m["accuracy"])

    def mistakes():
        if not mistakes_file.is_file():
            raise rp.Absent(no_final)
        with np.load(mistakes_file) as m:
            return rp.misclassified(dict(m), out)

    makers = {
        "best_over_time": lambda: rp.best_over_time(study, out),
        "optimization_history": lambda: rp.optimization_history(study, out),
        "param_importances": lambda: rp.param_importances(study, out),
        "parallel_coordinate": lambda: rp.parallel_coordinate(study, out),
        "slice": lambda: rp.slice_plot(study, out),
        "intermediate_values": lambda: rp.intermediate_values(study, out),
        "top5_curves": lambda: rp.top5_curves(_histories(study), out),
        "confusion_matrix": confusion,
        "misclassified": mistakes,
    }
    figures: dict[str, Path | str] = {}
    for name, make in makers.items():
        try:
            with matplotlib.rc_context({"text.parse_math": False}):  # names are plain text
                figures[name] = make()
        except rp.Absent as e:
            figures[name] = str(e)
            (out / f"{name}.png").unlink(missing_ok=True)  # no stale figure from an earlier report
        except Exception as e:  # one figure that fails never fails the report
            figures[name] = f"drawing it failed ({type(e).__name__}: {str(e)[:200]})"
            (out / f"{name}.png").unlink(missing_ok=True)
    return figures


def upload_best_artifacts(study: optuna.Study, study_dir: Path, figures: dict) -> list[str]:
    """The report's figures, the retrained model and its config, as artifacts of the study (Optuna
    attaches files only to a running trial, so each trial uploads its own curves as it ends; see
    search.tuning.objective). A file is uploaded again whenever its content changed (a new best
    was finalized, the figures were redrawn); the study remembers what it uploaded by hash."""
    store = FileSystemArtifactStore(str(_mkdir(artifact_dir(study_dir))))
    final = final_dir(study_dir)
    files = [*(p for p in figures.values() if isinstance(p, Path)),
             final / "best_model.keras", final / "best_config.yaml", final / "test_metrics.json"]
    sent = dict(study.user_attrs.get(UPLOADED, {}))
    uploaded = []
    for f in files:
        if not f.is_file():
            continue
        digest = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
        if sent.get(f.name) != digest:
            upload_artifact(artifact_store=store, file_path=str(f), study_or_trial=study)
            sent[f.name] = digest
            uploaded.append(f.name)
    if uploaded:
        study.set_user_attr(UPLOADED, sent)
    return uploaded


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def make_report(study: optuna.Study, study_dir: Path, artifacts: bool = True) -> Path:
    study_dir = Path(study_dir)
    out = _mkdir(within(study_dir, study_dir / "report"))
    write_atomic(out / "trials.csv", trials_table(study).to_csv(index=False))
    figures = make_figures(study, study_dir, out)
    if artifacts:
        upload_best_artifacts(study, study_dir, figures)
    write_atomic(out / "index.html", render(study, study_dir, figures))
    return out / "index.html"


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def render(study: optuna.Study, study_dir: Path, figures: dict) -> str:
    e = html.escape
    trials = study.get_trials(deepcopy=False)
    states = pd.Series([t.state.name for t in trials]).value_counts().to_dict() if trials else {}
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    wall = (max(ends) - min(starts)).total_seconds() / 60 if starts and ends else None
    seed = next((t for t in trials if t.user_attrs.get("seed_recipe")), None)
    parts = [f"<h1>Study {e(study.study_name)}</h1>",
             "<h2>Summary</h2><table>",
             f"<tr><th>trials</th><td>{len(trials)} ("
             + ", ".join(f"{n} {s.lower()}" for s, n in states.items()) + ")</td></tr>",
             f"<tr><th>wall time</th><td>{f'{wall:.1f} min' if wall is not None else 'n/a'} "
             "(first trial start to last trial end)</td></tr>"]
    if done:
        best = study.best_trial
        parts.append(f"<tr><th>best trial</th><td>#{best.number}: val accuracy "
                     f"<b>{best.value:.4f}</b></td></tr>")
        if seed is not None and seed.value is not None:
            parts.append(f"<tr><th>seed recipe (trial {seed.number})</th><td>val accuracy "
                         f"{seed.value:.4f} (best is {best.value - seed.value:+.4f})</td></tr>")
        parts.append("</table><h3>Best parameters</h3><table>")
        parts += [f"<tr><th>{e(k)}</th><td>{e(_fmt(v))}</td></tr>" for k, v in best.params.items()]
    else:
        parts.append("<tr><th>best trial</th><td>none: no trial has completed</td></tr>")
    parts.append("</table>")
    parts += _test_section(study, study_dir)
    parts.append("<h2>Figures</h2>")
    for name, v in figures.items():
        title = name.replace("_", " ")
        if isinstance(v, Path):
            parts.append(f"<h3>{e(title)}</h3><img src=\"{e(v.name)}\" alt=\"{e(title)}\">")
        else:
            parts.append(f"<h3>{e(title)}</h3><p class=\"absent\">Not drawn: {e(v)}</p>")
    parts.append("<p>Every trial: <a href=\"trials.csv\">trials.csv</a>.</p>")
    style = ("body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:3px 8px;"
             "text-align:left}img{max-width:100%;border:1px solid #eee}"
             ".absent{color:#a33;font-style:italic}")
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>{e(study.study_name)} report</title><style>{style}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")


def _test_section(study: optuna.Study, study_dir: Path) -> list[str]:
    f = final_dir(study_dir) / "test_metrics.json"
    if not f.is_file():
        return ["<h2>Test set</h2><p class=\"absent\">Not yet: the best config has not been "
                "retrained and tested (run <code>python run_search.py finalize</code>).</p>"]
    m = json.loads(f.read_text())
    n = len(m["test_accuracy"])
    out = ["<h2>Test set (retrained best)</h2>", *_staleness(study, m),
           f"<p>Trial {m['best_trial']} retrained with {n} seed(s): test accuracy "
           f"<b>{m['test_accuracy_mean']:.4f} ± {m['test_accuracy_std']:.4f}</b> "
           f"(per seed: {', '.join(f'{a:.4f}' for a in m['test_accuracy'])}).</p>"]
    if "pick" in m:
        p = m["pick"]
        runs = ", ".join(f"trial {k}: {sum(v) / len(v):.4f}" for k, v in p["values"].items())
        ahead = (f" {len(p['ahead'])} of the re-runs ran while the last trials did, on workers "
                 "they left idle." if p.get("ahead") else "")
        out.append(f"<p>Picked before the test, by mean validation accuracy over "
                   f"{len(p['values'][str(p['trial'])])} seeds ({html.escape(runs)}).{ahead}</p>")
        if p.get("within_noise"):
            out.append(f"<p class=\"absent\">The pick's margin over the seed recipe "
                       f"({p['margin']:+.4f}) is within their seed spread ({p['spread']:.4f}): "
                       "not a clear gain.</p>")
    if "seed_recipe" in m:
        s = m["seed_recipe"]
        out.append(f"<p>Seed recipe retrained the same way: {s['test_accuracy_mean']:.4f} ± "
                   f"{s['test_accuracy_std']:.4f}.</p>")
    out.append("<table><tr><th>class</th><th>test accuracy (mean over seeds)</th></tr>")
    out += [f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>"
            for k, v in m["per_class_accuracy_mean"].items()]
    out.append("</table>")
    return out


def _staleness(study: optuna.Study, m: dict) -> list[str]:
    """A warning when the retrained model is not of the study's current best trial (trials ran
    after the finalize), so the page never shows one trial's model under another's parameters."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    considered = {int(k) for k in m.get("pick", {}).get("values", {})} | {m["best_trial"]}
    if not done or study.best_trial.number in considered:  # the pick weighed the best trial
        return []
    return [f"<p class=\"absent\">The retrained model below is trial {m['best_trial']}'s; the "
            f"study's best is now trial {study.best_trial.number}. Run <code>python run_search.py "
            "finalize</code> to retrain and test it.</p>"]
