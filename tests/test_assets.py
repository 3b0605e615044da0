"""The inputs netviz carries (course images, SqueezeNet weights, boxes): found with nothing configured, loaded only
after their sha256 matches, refused in one line when altered, and present in an installed package."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from netviz import assets, data, models, weights
from netviz.config import resolve_data_dir
from netviz.data import course
from netviz.errors import NetvizError
from netviz.store import hash_file

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_data_dir(monkeypatch):
    monkeypatch.delenv("NETVIZ_DATA_DIR", raising=False)


def test_embedded_files_are_found_without_any_setting(no_data_dir):
    chosen = data.course_npz()
    assert chosen.source == "embedded: netviz/assets/imagenet_val_25.npz"
    assert hash_file(chosen.path) == assets.COURSE_NPZ.sha256
    images = data.load_course_images()
    assert images.images.shape == (25, 3, 224, 224) and images.source == chosen.source
    found = weights.resolve_weights("squeezenet1_1", {})
    assert found.source == "embedded: netviz/assets/weights/squeezenet1_1.pth"
    loaded = models.load_model("squeezenet1_1", {})
    assert loaded.weights_sha256 == assets.WEIGHTS["squeezenet1_1"].sha256
    with torch.no_grad():
        top1 = int((loaded.model(images.images).argmax(1) == images.labels).sum())
    assert top1 == 13, "the real ImageNet SqueezeNet 1.1 gets 13 of the 25 course images (PROVENANCE.md)"


def test_a_data_dir_copy_overrides_the_embedded_one(tmp_path, monkeypatch):
    shutil.copy(assets.COURSE_NPZ.path, tmp_path / data.COURSE_NPZ)
    monkeypatch.setenv("NETVIZ_DATA_DIR", str(tmp_path))
    chosen = resolve_data_dir({"data_dir": ""})
    assert data.course_npz(chosen).path == tmp_path / data.COURSE_NPZ
    assert data.course_npz(chosen).source == "data directory ($NETVIZ_DATA_DIR): imagenet_val_25.npz"
    assert weights.resolve_weights("squeezenet1_1", {}, chosen).source.startswith("embedded:"), "weights not in that dir"


@pytest.fixture
def tampered(tmp_path, monkeypatch, no_data_dir):
    """A copy of the assets folder with one byte changed in the npz and in the weights, used as the package's."""
    copy = tmp_path / "assets"
    shutil.copytree(assets.ASSETS_DIR, copy, symlinks=True)
    for relpath in (assets.COURSE_NPZ.relpath, assets.WEIGHTS["squeezenet1_1"].relpath):
        target = copy / relpath
        target.chmod(0o644)
        with open(target, "r+b") as fh:
            fh.seek(2000)
            byte = fh.read(1)
            fh.seek(2000)
            fh.write(bytes([byte[0] ^ 1]))
    monkeypatch.setattr(assets, "ASSETS_DIR", copy)
    return copy


def test_a_tampered_embedded_file_is_refused_in_one_line(tampered, monkeypatch):
    loads = []
    monkeypatch.setattr(course.np, "load", lambda *a, **k: loads.append(a) or pytest.fail("npz parsed before check"))
    for load in (data.load_course_images, lambda: models.load_model("squeezenet1_1", {})):
        with pytest.raises(NetvizError) as err:
            load()
        message = str(err.value)
        assert "altered" in message and "git checkout" in message and "\n" not in message
    assert not loads


def test_a_tampered_embedded_file_stops_the_cli_with_one_line(tampered, tmp_path, capsys, monkeypatch):
    from netviz import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "--only", "saliency"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("netviz: error: the embedded file netviz/assets/") and "altered" in err[0]
    assert not (tmp_path / "results" / "saliency").exists()


@pytest.mark.slow
def test_an_installed_netviz_finds_its_files_in_an_empty_folder(tmp_path):
    """Build the wheel, install it into a folder of its own, and plan a run from an empty folder: the default
    config, the embedded data and weights and the templates all come from the installed package."""
    wheel_dir, target, empty = tmp_path / "wheel", tmp_path / "site", tmp_path / "empty"
    empty.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheel_dir), str(REPO)],
                   check=True, capture_output=True, timeout=300)
    wheel = next(wheel_dir.glob("netviz-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True,
                   capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("NETVIZ_DATA_DIR", None)
    probe = subprocess.run([sys.executable, "-c", "import netviz.assets as a, netviz.config as c; "
                            "print(a.ASSETS_DIR); print(c.DEFAULT_CONFIG); print(c.TEMPLATES_DIR)"],
                           cwd=empty, env=env, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    for line in probe.stdout.split():
        assert Path(line).is_relative_to(target), f"{line} is not from the installed package"
    plan = subprocess.run([sys.executable, "-m", "netviz", "run", "--dry-run"], cwd=empty, env=env,
                          capture_output=True, text=True, timeout=300)
    assert plan.returncode == 0, plan.stderr
    assert "saliency: would re-run" in plan.stdout and "classviz: would re-run" in plan.stdout
    assert not list(empty.iterdir()), "a dry run writes nothing"
