"""A study's identity: what every trial of it was searched on, set once and always checked.

The identity (base config, the pruner's step, the space file, the data's fingerprint) is one
study attribute, written in one storage call by the process that creates the study, before it
enqueues the seed recipe. A process that joins a study waits for it (workers started together
race the creator), and refuses a study that has none (created outside this tool, or its creator
stopped before writing it) unless told to adopt it (`--adopt`). Studies from before this record
carry the same facts as separate attributes, read here as their identity.
"""

from __future__ import annotations

import time

import optuna

from search.errors import UserError
from search.secrets import safe_url

KEY = "identity"
# one value per stage end (step = stage index)
STAGE_PRUNERS = frozenset({"stage", "stage-late", "stage-median"})
EPOCH_PRUNERS = ("hyperband", "median", "none", "sha")


def report_unit(pruner: str) -> str:
    """What the objective reports to `pruner`: "stage" (best val accuracy at each stage end) or
    "epoch" (val accuracy at every global epoch)."""
    return "stage" if pruner in STAGE_PRUNERS else "epoch"


def make(space, pruner: str, data: dict | None) -> dict:
    return {"base_config": space.base.to_dict(), "pruning_step": report_unit(pruner),
            "space_file": str(space.path), "data": data}


def read(study: optuna.Study) -> dict | None:
    """The study's identity, or None when it has none (yet)."""
    attrs = study.user_attrs
    if isinstance(attrs.get(KEY), dict):
        return attrs[KEY]
    if "base_config" in attrs:  # a study from before the one record
        return {"base_config": attrs["base_config"],
                "pruning_step": attrs.get("pruning_step", "epoch"),
                "space_file": attrs.get("space_file"), "data": attrs.get("data")}
    return None


def bind(study: optuna.Study, identity: dict) -> None:
    study.set_user_attr(KEY, identity)  # one storage call: a reader sees all of it or none


def wait(study: optuna.Study, seconds: float, log=print) -> dict | None:
    """The identity, waiting up to `seconds` for a creator that has not written it yet (and
    saying so once, so that a joiner's pause has a reason on the screen)."""
    deadline = time.monotonic() + seconds
    found = read(study)
    if found is None and seconds > 0:
        log(f"waiting up to {seconds:.0f} s for study '{study.study_name}''s creator to record "
            "its identity", flush=True)
    while found is None and time.monotonic() < deadline:
        time.sleep(0.2)
        found = read(study)
    return found


def refuse_unbound(study: optuna.Study, url: str) -> None:
    raise UserError(f"study '{study.study_name}' in {safe_url(url)} records no data, base config "
                    "or pruner step (it was created outside run_search.py, or its creator stopped "
                    "before writing them); pass --adopt to bind it to this search's, or a new "
                    "--study-name.")


def check(study: optuna.Study, stored: dict, mine: dict, url: str, pruner: str) -> None:
    """Refuse to join a study searched on another base config, pruner step or data."""
    where = f"study '{study.study_name}' in {safe_url(url)}"
    fix = "pass the space and flags it was started with, or a new --study-name."
    a, b = stored.get("base_config") or {}, mine["base_config"]
    diffs = [f"base config '{k}' was {a.get(k)!r}, now {b.get(k)!r}"
             for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if diffs:
        shown = "; ".join(diffs[:4]) + ("; ..." if len(diffs) > 4 else "")
        raise UserError(f"{where} conflicts with this search: {shown}; {fix}")
    step = stored.get("pruning_step", "epoch")
    if step != mine["pruning_step"]:
        kinds = sorted(STAGE_PRUNERS) if step == "stage" else list(EPOCH_PRUNERS)
        raise UserError(f"{where} was pruned per {step}, but --pruner {pruner} prunes per "
                        f"{mine['pruning_step']}; pass --pruner {' or '.join(kinds)}, or a new "
                        "--study-name.")
    if mine.get("data") is not None:
        check_data(study, mine["data"], stored)


def check_data(study: optuna.Study, data: dict, stored: dict | None = None) -> None:
    """Refuse to mix data sources in one study: its trials were trained on the data it recorded."""
    stored = (stored if stored is not None else read(study) or {}).get("data")
    if stored is not None and stored.get("fingerprint") != data["fingerprint"]:
        raise UserError(f"study '{study.study_name}' was searched on {stored.get('source')} "
                        f"(fingerprint {str(stored.get('fingerprint'))[:12]}), but this run loads "
                        f"{data['source']} (fingerprint {data['fingerprint'][:12]}); pass the "
                        "--data-dir the study was started with, or a new --study-name.")


def check_overrides(study: optuna.Study, overrides: dict, url: str) -> None:
    """Refuse a finalize whose flags change what the study's trials were searched with (the
    backbone, the split, the image size)."""
    base = (read(study) or {}).get("base_config") or {}
    for key, value in overrides.items():
        if key in base and base[key] != value:
            raise UserError(f"study '{study.study_name}' in {safe_url(url)} was searched with "
                            f"{key}={base[key]!r}, but this finalize asks for {value!r}; drop "
                            f"--{key.replace('_', '-')}, or search anew with it.")
