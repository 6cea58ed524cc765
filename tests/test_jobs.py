"""The job options: what the CLI parses is what the jobs get, and the resume command is exact."""

from search.cli.main import build_parser
from search.jobs import RunOptions, SearchOptions


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
