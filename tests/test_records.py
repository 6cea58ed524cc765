"""Publishing a finalize's folder: one complete set for readers, with or without symlinks."""

import errno
import os

from search.tuning.records import FINAL_FILES, final_dir, new_final_dir, publish_final


def a_final_set(study_dir, tag):
    folder = new_final_dir(study_dir)
    for name in FINAL_FILES:
        if name.endswith("savedmodel"):
            (folder / name).mkdir()
            (folder / name / "saved_model.pb").write_text(tag)
        else:
            (folder / name).write_text(tag)
    return folder


def test_best_is_a_link_switched_in_one_step(tmp_path):
    first = a_final_set(tmp_path, "one")
    publish_final(tmp_path, first)
    second = a_final_set(tmp_path, "two")
    publish_final(tmp_path, second)
    assert (tmp_path / "best").is_symlink() and final_dir(tmp_path) == second.resolve()
    assert (tmp_path / "test_metrics.json").read_text() == "two"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary link left


def test_a_copied_best_folder_is_kept_aside_not_a_failure(tmp_path):
    (tmp_path / "best").mkdir(parents=True)  # `scp -r` turned the link into a folder
    (tmp_path / "best" / "test_metrics.json").write_text("copied")
    folder = a_final_set(tmp_path, "new")
    publish_final(tmp_path, folder)
    assert final_dir(tmp_path) == folder.resolve()
    kept = [p for p in (tmp_path / "final").iterdir() if p.name.startswith("copied-")]
    assert len(kept) == 1 and (kept[0] / "test_metrics.json").read_text() == "copied"


def test_without_symlinks_a_pointer_file_names_the_set_and_the_names_are_copies(tmp_path,
                                                                                monkeypatch):
    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "symlink", no_links)
    for tag in ("one", "two"):
        folder = a_final_set(tmp_path, tag)
        publish_final(tmp_path, folder)
        assert final_dir(tmp_path) == folder
        assert (tmp_path / "test_metrics.json").read_text() == tag
        assert (tmp_path / "best_model_savedmodel" / "saved_model.pb").read_text() == tag
    assert not (tmp_path / "best").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_link_planted_in_a_results_or_cache_folder_is_never_written_through(tmp_path):
    import numpy as np
    import pytest

    from search.cache.store import FeatureCache
    from search.errors import UserError
    from search.recipe.run_dir import new_run_dir
    from search.tuning.records import trial_dir

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    study = tmp_path / "res" / "study"
    (study / "trials").mkdir(parents=True)
    (study / "trials" / "0001").symlink_to(outside)
    assert trial_dir(study, 0) == study / "trials" / "0000"
    with pytest.raises(UserError, match="leads outside"):
        trial_dir(study, 1)
    (study / "final").symlink_to(outside)
    with pytest.raises(UserError, match="leads outside"):
        new_final_dir(study)
    (tmp_path / "res" / "runs").symlink_to(outside)
    with pytest.raises(UserError, match="leads outside"):
        new_run_dir(tmp_path / "res", "x")

    cache = FeatureCache(tmp_path / "cache", views=1)
    key = cache.key({"k": 1})
    planted = outside / "entry"
    planted.mkdir()
    np.save(planted / "in0.npy", np.ones(3))
    (planted / "meta.json").write_text('{"arrays": 1}')
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / key).symlink_to(planted)
    with pytest.raises(UserError, match="leads outside"):
        cache.get({"k": 1}, lambda: [np.zeros(3)])
    assert sorted(p.name for p in outside.iterdir()) == ["entry"]  # nothing written there
    assert sorted(p.name for p in planted.iterdir()) == ["in0.npy", "meta.json"]
