"""Images: the course's 25 (checked by sha256) and a folder of the user's own images with labels and boxes."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from netviz import data
from netviz.config import NO_DATA_DIR, resolve_data_dir
from netviz.data import course, folder
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
        data.load_course_images(resolve_data_dir({"data_dir": str(tmp_path)}))


def test_missing_npz_offline_is_a_clear_error(tmp_path, monkeypatch):
    """An installation without the embedded copy falls back to the course's URL; offline that is one clear line."""
    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(course.urllib.request, "urlopen", offline)
    monkeypatch.setattr(course.assets, "ASSETS_DIR", tmp_path / "stripped")
    monkeypatch.setattr(course, "DOWNLOAD_DIR", tmp_path / "cache")
    monkeypatch.delenv("NETVIZ_DATA_DIR", raising=False)
    with pytest.raises(NetvizError, match="NETVIZ_DATA_DIR"):
        data.load_course_images(resolve_data_dir({"data_dir": ""}))
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


@pytest.fixture
def course_folder(tmp_path, course_images):
    """Six course images as PNGs with their labels and boxes in labels.json."""
    entries = {}
    for index in range(6):
        name = f"img{index}.png"
        Image.fromarray((course_images.images[index].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(tmp_path / name)
        entries[name] = {"label": int(course_images.labels[index]), "boxes": [list(b) for b in course_images.boxes[index]]}
    (tmp_path / "labels.json").write_text(json.dumps(entries))
    return tmp_path


def count_decodes(monkeypatch) -> list:
    decoded = []
    real = folder._decode_file

    def counting(path):
        decoded.append(path.name)
        return real(path)

    monkeypatch.setattr(folder, "_decode_file", counting)
    return decoded


def test_folder_is_read_lazily(course_folder, course_images, monkeypatch):
    decoded = count_decodes(monkeypatch)
    images = data.load_image_folder(course_folder)
    assert decoded == [] and len(images) == 6, "loading reads labels and image headers only"
    assert images.boxes == course_images.boxes[:6] and images.labels.tolist() == course_images.labels[:6].tolist()
    first = images.pixels([4, 1])
    assert decoded == ["img4.png", "img1.png"]
    assert torch.equal(first, course_images.images[[4, 1]]), "the same float32 values as the course's pixels"
    assert first.dtype == torch.float32 and first.is_contiguous()
    whole = images.images
    assert torch.equal(whole[[4, 1]], first) and torch.equal(images.images, whole)
    assert len(decoded) == 2 + 6, "the whole set is decoded once, then kept"


def test_item_sha256_reads_files_not_pixels(course_folder, monkeypatch):
    decoded = count_decodes(monkeypatch)
    images = data.load_image_folder(course_folder)
    shas = [images.item_sha256(i) for i in range(len(images))]
    assert decoded == [] and len(set(shas)) == 6
    known = data.data_fingerprint({"images": str(course_folder)}, NO_DATA_DIR)["files"]
    assert [data.load_image_folder(course_folder, known).item_sha256(i) for i in range(6)] == shas
    labels = json.loads((course_folder / "labels.json").read_text())
    labels["img2.png"]["label"] = 1
    labels["img3.png"]["boxes"] = [[0, 0, 10, 10]]
    (course_folder / "labels.json").write_text(json.dumps(labels))
    make_image(course_folder / "img5.png", 224, 224, (1, 2, 3))
    changed = data.load_image_folder(course_folder)
    assert [changed.item_sha256(i) == shas[i] for i in range(6)] == [True, True, False, False, True, False]


def test_box_outside_is_refused_from_the_header(tmp_path, monkeypatch):
    decoded = count_decodes(monkeypatch)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 300×200, displayed 200×300
    Image.fromarray(np.full((200, 300, 3), 9, dtype=np.uint8)).save(tmp_path / "turned.jpg", exif=exif)
    (tmp_path / "labels.json").write_text(json.dumps({"turned.jpg": {"label": 1, "boxes": [[0, 0, 200, 300]]}}))
    images = data.load_image_folder(tmp_path)
    assert images.sizes == [(200, 300)] and images.boxes == [[(0, 0, 224, 224)]]
    assert images.pixels([0]).shape == (1, 3, 224, 224)
    (tmp_path / "labels.json").write_text(json.dumps({"turned.jpg": {"label": 1, "boxes": [[0, 0, 300, 200]]}}))
    with pytest.raises(NetvizError, match="outside the 200×300 image"):
        data.load_image_folder(tmp_path)
    assert decoded == ["turned.jpg"]


def test_damaged_pixels_are_found_when_decoded(tmp_path):
    make_image(tmp_path / "a.png", 64, 64, (200, 10, 10))
    raw = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(raw[: len(raw) - 40])  # header intact, image data cut
    (tmp_path / "labels.json").write_text(json.dumps({"a.png": 1}))
    images = data.load_image_folder(tmp_path)
    with pytest.raises(NetvizError, match="a.png cannot be read as an image") as caught:
        images.pixels([0])
    assert "\n" not in str(caught.value)


def test_folder_shape_is_known_without_decoding(tmp_path, course_images, monkeypatch):
    """A lazy folder tells its images' shape (what batch sizes are planned from) without decoding any."""
    from netviz import data
    from netviz.imagenet_folder import write_imagenet_folder

    folder = write_imagenet_folder(course_images, tmp_path / "val", copies=1)
    images = data.load_image_folder(folder)
    monkeypatch.setattr(type(images), "_decode", lambda self, i: pytest.fail("decoded an image"))
    assert images.image_shape == tuple(course_images.image_shape) == (3, 224, 224)
