import os
import stat

import pytest

from data.atomic import atomic_path, write_text_atomic


def test_two_writers_of_one_file_each_write_their_own_temporary_file(tmp_path):
    target = tmp_path / "centroids.pt"
    with atomic_path(target) as first:
        first.write_text("first")
        with atomic_path(target) as second:  # another process writing the same file meanwhile
            assert second != first and second.parent == tmp_path
            second.write_text("second")
        assert target.read_text() == "second"
    assert target.read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["centroids.pt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    target = tmp_path / "params.json"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["params.json"]


def test_written_files_get_the_usual_mode_not_a_private_one(tmp_path):
    write_text_atomic(tmp_path / "a.json", "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~umask


def test_the_fault_hook_dies_at_the_named_point_and_count(monkeypatch):
    import data.atomic

    def exit_now(status):
        raise SystemExit(status)

    monkeypatch.setattr(os, "_exit", exit_now)
    monkeypatch.setattr(data.atomic, "_FAULT", "step:2")
    monkeypatch.setattr(data.atomic, "_FAULT_COUNTS", {})
    data.atomic.fault_point("evaluate")
    data.atomic.fault_point("step")
    with pytest.raises(SystemExit) as died:
        data.atomic.fault_point("step")
    assert died.value.code == 137
