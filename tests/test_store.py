"""Staged writes (store.staged): folders built under staging names replace the old ones only when the block
succeeds; on an error the old folders stay as they were and no staging folder is left behind."""

import pytest

from netviz import store


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if any(m in p.name for m in store.STAGING_MARKERS))


def test_staged_swaps_in_every_folder_in_order(tmp_path, monkeypatch):
    old = tmp_path / "results" / "a"
    old.mkdir(parents=True)
    (old / "stale.txt").write_text("old")
    swapped = []
    swap_in = store.swap_in
    monkeypatch.setattr(store, "swap_in", lambda stage, final: (swapped.append(final), swap_in(stage, final)))
    with store.staged(tmp_path / "figures" / "a", old) as (figures, results):
        assert figures.parent == tmp_path / "figures" and results.parent == tmp_path / "results"
        assert figures.is_dir() and results.is_dir() and not any(results.iterdir())
        (figures / "f.png").write_bytes(b"png")
        (results / "metrics.json").write_text("{}")
        assert (old / "stale.txt").exists(), "nothing is replaced before the block ends"
    assert swapped == [tmp_path / "figures" / "a", old], "swapped in in the order given"
    assert sorted(p.name for p in old.iterdir()) == ["metrics.json"]
    assert (tmp_path / "figures" / "a" / "f.png").read_bytes() == b"png"
    assert leftovers(tmp_path / "results") == [] and leftovers(tmp_path / "figures") == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_staged_keeps_the_old_folders_on_an_error(tmp_path, error):
    final = tmp_path / "results" / "a"
    final.mkdir(parents=True)
    (final / "metrics.json").write_text("old")
    with pytest.raises(error):
        with store.staged(final, tmp_path / "figures" / "a") as (results, figures):
            (results / "metrics.json").write_text("new")
            raise error("stopped")
    assert (final / "metrics.json").read_text() == "old"
    assert not (tmp_path / "figures" / "a").exists()
    assert leftovers(tmp_path / "results") == [] and leftovers(tmp_path / "figures") == []


def test_staged_removes_the_first_stage_when_the_second_cannot_be_made(tmp_path, monkeypatch):
    made = []
    staging_dir = store.staging_dir

    def second_fails(final):
        if made:
            raise OSError(30, "Read-only file system", str(final))
        made.append(staging_dir(final))
        return made[-1]

    monkeypatch.setattr(store, "staging_dir", second_fails)
    with pytest.raises(OSError):
        with store.staged(tmp_path / "results" / "a", tmp_path / "figures" / "a"):
            pytest.fail("the block must not run without its folders")
    assert made and not made[0].exists() and leftovers(tmp_path / "results") == []
