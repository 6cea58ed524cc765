"""The job options: what the CLI parses is what the jobs get, and the resume command is exact."""

import re
from pathlib import Path

from conftest import ROOT
from search.cli.main import build_parser
from search.options import RunOptions, SearchOptions


def test_the_resume_command_parses_back_to_the_same_options():
    opts = SearchOptions(trials=7, space="spaces/tiny.yaml", pruner="none", no_cache=True,
                         results_dir="/tmp/x y", seed=3, retrain_seeds=2, timeout=5.5,
                         test_baseline=False)  # on by default: written --no-test-baseline
    argv = opts.command()
    assert argv[1:3] == ["run_search.py", "search"]
    assert SearchOptions.from_namespace(build_parser().parse_args(argv[2:])) == opts
    assert SearchOptions().command()[1:] == ["run_search.py", "search"]  # defaults: no flags


def test_the_resume_command_masks_a_storage_password():
    argv = SearchOptions(storage="postgresql+psycopg://me:secret@db:5432/s").command()
    assert "secret" not in " ".join(argv) and "me:***@db:5432/s" in " ".join(argv)


def test_parser_defaults_are_the_options_defaults():
    for command, cls in (("search", SearchOptions), ("train", RunOptions)):
        assert cls.from_namespace(build_parser().parse_args([command])) == cls()


# Flags whose default is a behaviour rather than a value; their figures are checked one by one.
DESCRIBED = {"storage", "sampler_seed", "data_dir", "cache_dir", "model", "out", "heartbeat",
             "worker_trials", "xla"}


def _stated(help_text: str) -> str | None:
    m = re.search(r"default:?\s+([^);]+)", help_text)
    return m.group(1).strip() if m else None


def _shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (str, Path)) and Path(value).is_absolute():
        return str(Path(value).relative_to(ROOT))
    return str(value)


def test_every_default_that_help_states_is_the_one_the_code_uses():
    from search.recipe.config import TrainConfig
    from search.runner.pool import DEFAULT_RUNS
    from search.tuning.space import DEFAULT_SPACE
    from search.tuning.storage import default_heartbeat

    effective = {"train_samples": TrainConfig.train_samples, "val_samples": TrainConfig.val_samples,
                 "image_size": TrainConfig.image_size, "space": DEFAULT_SPACE}
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    checked = 0
    for name, sub in commands.items():
        for action in sub._actions:
            text = _stated(action.help or "")
            if text is None or action.dest in DESCRIBED:
                continue
            value = action.default if action.default is not None else effective[action.dest]
            assert text.startswith(_shown(value)), f"{name} --{action.dest}: help says {text!r}"
            checked += 1
    assert checked > 60
    search = {a.dest: a.help for a in commands["search"]._actions}
    assert f"default {DEFAULT_RUNS['cache']} on the cache" in search["worker_trials"]
    assert f"{DEFAULT_RUNS['live']} with --no-cache" in search["worker_trials"]
    assert f"default {default_heartbeat('postgresql://h/db', None)} on PostgreSQL" in search["heartbeat"]
    assert default_heartbeat("sqlite:///x.db", None) is None and "off on SQLite" in search["heartbeat"]


def test_set_overrides_parse_as_yaml_round_trip_and_refuse_malformed_pairs():
    import pytest

    from search.errors import UserError

    argv = ["search", "--set", "head_epochs=5", "--set", "stage_lrs=[1.0e-4, 5.0e-5]",
            "--set", "aug_flip=false"]
    opts = SearchOptions.from_namespace(build_parser().parse_args(argv))
    assert opts.set_values() == {"head_epochs": 5, "stage_lrs": [1e-4, 5e-5], "aug_flip": False}
    assert opts.overrides()["head_epochs"] == 5
    back = SearchOptions.from_namespace(build_parser().parse_args(opts.command()[2:]))
    assert back == opts  # the resume command carries every --set
    for bad in ("head_epochs", "=5", "seed=[1, 2"):
        with pytest.raises(UserError, match="--set"):
            SearchOptions(sets=(bad,))


def test_every_flag_of_every_command_is_in_docs_usage():
    usage = (ROOT / "docs" / "usage.md").read_text()
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    missing = [f"{name} {flag}" for name, sub in commands.items() for a in sub._actions
               for flag in a.option_strings if flag not in ("-h", "--help")
               and f"`{flag}" not in usage]
    assert missing == []
    assert all(f"`{name}`" in usage for name in commands)


def test_the_readme_stays_a_quick_start():
    readme = (ROOT / "README.md").read_bytes()
    assert len(readme) < 10 * 1024
    first = readme.decode().split("```")[1]  # the first code block: set-up + search, set-up + tests
    assert "run_search.py --trials 50" in first and "-m pytest" in first
