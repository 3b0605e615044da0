"""Images: the course's 25 (checked by sha256) and a folder of the user's own images with labels and boxes."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from netviz import data
from netviz.errors import NetvizError


def test_course_images(course_images):
    assert course_images.images.shape == (25, 3, 224, 224)
    assert course_images.images.dtype == torch.float32
    assert 0.0 <= float(course_images.images.min()) and float(course_images.images.max()) <= 1.0
    assert course_images.names[1] == "quail" and int(course_images.labels[1]) == 85
    assert all(course_images.boxes), "every course image has at least one box"


def test_corrupt_npz_is_refused(tmp_path, data_dir):
    shutil.copy(data_dir / data.COURSE_NPZ, tmp_path / data.COURSE_NPZ)
    with open(tmp_path / data.COURSE_NPZ, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(NetvizError, match="corrupt"):
        data.load_course_images(tmp_path)


def test_missing_npz_offline_is_a_clear_error(tmp_path, monkeypatch):
    """An installation without the embedded copy falls back to the course's URL; offline that is one clear line."""
    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    monkeypatch.setattr(data.assets, "ASSETS_DIR", tmp_path / "stripped")
    monkeypatch.setattr(data, "DOWNLOAD_DIR", tmp_path / "cache")
    monkeypatch.delenv("NETVIZ_DATA_DIR", raising=False)
    with pytest.raises(NetvizError, match="NETVIZ_DATA_DIR"):
        data.load_course_images()
    assert not list((tmp_path / "cache").iterdir()), "no partial download is left behind"


def test_class_index_by_name_or_number():
    assert data.class_index("tarantula") == 76
    assert data.class_index("Tarantula") == 76
    assert data.class_index(113) == 113 and data.class_index("113") == 113
    with pytest.raises(NetvizError, match="did you mean 'tarantula'"):
        data.class_index("tarantla")
    with pytest.raises(NetvizError, match="out of range"):
        data.class_index(1000)


def make_image(path, width, height, color):
    Image.fromarray(np.full((height, width, 3), color, dtype=np.uint8)).save(path)


def test_folder_with_labels_json_and_boxes(tmp_path):
    make_image(tmp_path / "wide.png", 448, 224, (255, 0, 0))  # scaled by 1, cropped 112 px on the left
    make_image(tmp_path / "small.jpg", 112, 112, (0, 255, 0))  # scaled by 2, no crop
    (tmp_path / "labels.json").write_text(json.dumps({
        "wide.png": {"label": "tabby", "boxes": [[150, 20, 250, 120], [0, 0, 50, 50]]},
        "small.jpg": 76,
    }))
    images = data.load_image_folder(tmp_path)
    assert images.images.shape == (2, 3, 224, 224)
    assert images.ids == ["small.jpg", "wide.png"]
    assert images.names == ["tarantula", "tabby"]
    assert images.boxes[0] == []
    assert images.boxes[1] == [(38, 20, 138, 120)]  # the second box was cropped away
    assert float(images.images[1, 0].mean()) == pytest.approx(1.0)


def test_folder_with_labels_csv(tmp_path):
    make_image(tmp_path / "a.png", 300, 400, (10, 20, 30))
    (tmp_path / "labels.csv").write_text("file,label\na.png,hay\n")
    images = data.load_image_folder(tmp_path)
    assert images.labels.tolist() == [958]


@pytest.mark.parametrize("labels, message", [
    (None, "no labels.json or labels.csv"),
    ({"a.png": "not a class"}, "unknown class 'not a class'"),
    ({"missing.png": 1}, "does not exist"),
    ({"notes.txt": 1}, "not an image file"),
])
def test_folder_errors(tmp_path, labels, message):
    make_image(tmp_path / "a.png", 50, 50, (0, 0, 0))
    (tmp_path / "notes.txt").write_text("hello")
    if labels is not None:
        (tmp_path / "labels.json").write_text(json.dumps(labels))
    with pytest.raises(NetvizError, match=message):
        data.load_image_folder(tmp_path)


def test_unreadable_image(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "labels.json").write_text(json.dumps({"broken.png": 1}))
    with pytest.raises(NetvizError, match="cannot be read as an image"):
        data.load_image_folder(tmp_path)
