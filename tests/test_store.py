"""The one persistence format: round trip, and every kind of damage gives one ValueError naming the file."""

from __future__ import annotations

import numpy as np
import pytest

from attnpaths._src import atomic
from attnpaths._src.store import differing_fields, load_record, save_record


def test_round_trip(tmp_path):
    path = tmp_path / "r.npz"
    save_record(path, "stage:x", {"settings": {"a": 1, "b": [1.5, 2.0]}, "n": np.int64(3)},
                {"U": np.eye(3), "k": np.arange(4)})
    header, arrays = load_record(path, kind="stage:x")
    assert header["settings"] == {"a": 1, "b": [1.5, 2.0]} and header["n"] == 3 and header["kind"] == "stage:x"
    np.testing.assert_array_equal(arrays["U"], np.eye(3))
    assert arrays["k"].dtype == np.int64


@pytest.mark.parametrize("damage, match", [
    (lambda p: p.write_bytes(p.read_bytes()[:150]), "r.npz is corrupt or truncated"),
    (lambda p: p.write_text("notes"), "r.npz is corrupt or truncated"),
    (lambda p: np.savez(open(p, "wb"), data=np.arange(3)), "r.npz is not an attnpaths record"),
])
def test_damage_is_one_clear_error(tmp_path, damage, match):
    path = tmp_path / "r.npz"
    save_record(path, "stage:x", {}, {"U": np.eye(3)})
    damage(path)
    with pytest.raises(ValueError, match=match):
        load_record(path)


def test_wrong_kind_and_missing_file(tmp_path):
    path = tmp_path / "r.npz"
    save_record(path, "stage:x", {}, {})
    with pytest.raises(ValueError, match="holds a 'stage:x' record, not 'stage:y'"):
        load_record(path, kind="stage:y")
    with pytest.raises(FileNotFoundError, match="no attnpaths record at"):
        load_record(tmp_path / "none.npz")


def test_failed_write_keeps_previous_record(tmp_path, monkeypatch):
    path = tmp_path / "r.npz"
    save_record(path, "stage:x", {"v": 1}, {"U": np.eye(2)})
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_record(path, "stage:x", {"v": 2}, {"U": np.zeros((2, 2))})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.npz"]  # no temporary left behind


def test_differing_fields():
    assert differing_fields({"a": 1, "b": (1, 2), "c": 0}, {"a": 1, "b": [1, 3], "d": 0}) == ["b", "c", "d"]
    assert differing_fields({"a": 1, "v": "x"}, {"a": 1, "v": "y"}, ignore=("v",)) == []
