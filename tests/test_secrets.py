"""Storage passwords never reach a message, a file or a note, however the URL is spelled."""

import pytest

from search.cli import main
from search.secrets import MASK, NOT_SHOWN, mask_url, passwords, redact_argv, safe_url, scrub

SPELLINGS = [  # (url, the secret it holds)
    ("postgresql+psycopg://me:s3cret@db:5432/search", "s3cret"),
    ("postgresql+psycopg://me:pa ss@db/search", "pa ss"),  # a password holding a space
    ("postgresql+psycopg://me@db/search?password=s3cret", "s3cret"),
    ("postgresql+psycopg://me@db/search?pass%77ord=s3cret", "s3cret"),  # SQLAlchemy decodes it
    ("postgresql+psycopg://me@db/search?password1=s3cret", "s3cret"),
    ("postgresql+psycopg://me:p%40ss@db/search", "p@ss"),  # percent-encoded in the URL
]


@pytest.mark.parametrize("url,secret", SPELLINGS)
def test_a_url_is_shown_without_its_secret_in_any_spelling(url, secret):
    shown = safe_url(url)
    assert secret not in shown and MASK in shown and "db" in shown
    assert secret in passwords(url)
    text = f"FATAL: password authentication failed for {url} (password {secret})"
    assert secret not in scrub(text, url)
    assert all(secret not in a for a in redact_argv(["--storage", url]))


def test_a_url_that_does_not_parse_is_never_echoed():
    url = "postgresql:/me:s3cret@db/search"  # ':/' for '://'
    assert safe_url(url) == NOT_SHOWN
    assert "s3cret" not in mask_url(f"--storage={url}")
    assert "s3cret" not in " ".join(redact_argv(["run_search.py", "--storage", url]))


def test_files_and_paths_are_shown_as_they_are():
    for url in ("sqlite:////tmp/x y/optuna.db", "journal:/shared/study.log"):
        assert safe_url(url) == url
    assert redact_argv(["--results-dir", "/tmp/r"]) == ["--results-dir", "/tmp/r"]


def test_an_unexpected_error_is_one_scrubbed_line_and_a_traceback_file(tmp_path, capsys,
                                                                         monkeypatch):
    import search.cli.study_cmds as study_cmds

    url = "postgresql+psycopg://me:hunter2@127.0.0.1:1/db"

    def boom(args):
        raise MemoryError(f"while talking to {url}: out of memory (hunter2)")

    monkeypatch.setitem(study_cmds.HANDLERS, "report", boom)
    assert main(["report", "--storage", url, "--results-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unexpected MemoryError")
    assert "hunter2" not in err and "Traceback" not in err
    path = err.rsplit(" in ", 1)[1].strip()
    text = open(path).read()
    assert "Traceback" in text and "MemoryError" in text and "hunter2" not in text
