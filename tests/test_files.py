"""Every output is written under a unique temporary name, then renamed: search.files.atomic_path."""

import pytest

from search.files import atomic_path


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_write_replaces_the_old_one_whole_and_a_failed_one_leaves_it_and_no_temporary(
        tmp_path, kind):
    def write(p, text):
        if kind == "folder":
            p.mkdir()
            (p / "a.txt").write_text(text)
        else:
            p.write_text(text)

    def read(p):
        return (p / "a.txt" if kind == "folder" else p).read_text()

    target = tmp_path / "out" / "thing.keras"
    for text in ("old", "new"):
        with atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp.name.startswith(".thing.")
            write(tmp, text)
        assert read(target) == text
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        write(tmp, "half")
        raise RuntimeError("the writer failed")
    assert read(target) == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["thing.keras"]


def test_a_folder_never_removes_or_writes_through_a_link_in_its_place(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("theirs")
    link = tmp_path / "best"
    link.symlink_to(elsewhere)
    with pytest.raises(OSError):  # a folder cannot replace a link in one rename: it fails whole
        with atomic_path(link) as tmp:
            tmp.mkdir()
    assert link.is_symlink() and (elsewhere / "keep.txt").read_text() == "theirs"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
