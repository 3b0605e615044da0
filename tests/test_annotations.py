"""Annotation readers (ImageNet validation XML, LOC_val_solution.csv, Pascal VOC XML), the ImageNet-layout folder
writer, and per-image tables with their 95 % intervals."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy import stats

from netviz import annotations, claims, data, imagenet_folder, tables
from netviz.config import NO_DATA_DIR
from netviz.errors import NetvizError


def make_image(path, width, height, color=(90, 120, 150), **save):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), color, dtype=np.uint8)).save(path, **save)


def xml(objects, size=None, filename="x") -> str:
    """A VOC-style annotation: ``objects`` = [(name, (xmin, ymin, xmax, ymax))]."""
    size_xml = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    body = "".join(f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
                   f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for name, b in objects)
    return f"<annotation><folder>val</folder><filename>{filename}</filename>{size_xml}{body}</annotation>"


def test_synsets_follow_the_class_order_of_torchvision():
    synsets, names = annotations.imagenet_synsets(), data.imagenet_categories()
    assert len(synsets) == 1000 == len(set(synsets))
    assert (synsets[0], names[0]) == ("n01440764", "tench")
    assert (synsets[1], names[1]) == ("n01443537", "goldfish")
    assert annotations.synset_index("n01806567") == 85 and names[85] == "quail"
    assert annotations.synset_index("n02123045") == 281 and names[281] == "tabby"
    assert annotations.synset_index("n15075141") == 999 and names[999] == "toilet tissue"


def test_every_voc_class_maps_to_an_imagenet_class_but_person(tmp_path):
    mapped = annotations.voc_classes(tmp_path)
    assert len(mapped) == 20 and [k for k, v in mapped.items() if v is None] == ["person"]
    assert data.imagenet_categories()[mapped["dog"]] == "golden retriever"


def test_imagenet_validation_xml_beside_the_images(tmp_path):
    make_image(tmp_path / "ILSVRC2012_val_00000001.JPEG", 448, 224, format="JPEG")  # scale 1, 112 px cut on the left
    make_image(tmp_path / "ILSVRC2012_val_00000002.png", 112, 112)  # scale 2
    (tmp_path / "ILSVRC2012_val_00000001.xml").write_text(xml(
        [("n02123045", (150, 20, 250, 120)), ("n01440764", (300, 0, 400, 100)), ("n02123045", (0, 0, 50, 50))],
        size=(448, 224)))
    (tmp_path / "ILSVRC2012_val_00000002.xml").write_text(xml([("n01806567", (10, 20, 60, 100))]))
    images = data.load_image_folder(tmp_path)
    assert images.ids == ["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.png"]
    assert images.labels.tolist() == [281, 85] and images.names == ["tabby", "quail"]
    # the tench is another class; the second tabby box lies in the cropped-away strip
    assert images.boxes == [[(38, 20, 138, 120)], [(20, 40, 120, 200)]]
    assert images.pixels([1]).shape == (1, 3, 224, 224)


def test_voc_layout_with_annotations_and_jpegimages_folders(tmp_path):
    make_image(tmp_path / "JPEGImages" / "2008_000001.jpg", 224, 224, format="JPEG")
    make_image(tmp_path / "JPEGImages" / "2008_000002.jpg", 224, 224, format="JPEG")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "2008_000001.xml").write_text(xml(
        [("person", (1, 1, 100, 224)), ("dog", (11, 21, 110, 120)), ("cat", (1, 1, 5, 5)), ("dog", (101, 101, 200, 200))],
        size=(224, 224)))
    (tmp_path / "Annotations" / "2008_000002.xml").write_text(xml([("horse", (1, 1, 224, 224))], size=(224, 224)))
    images = data.load_image_folder(tmp_path)
    assert images.ids == ["JPEGImages/2008_000001.jpg", "JPEGImages/2008_000002.jpg"]
    assert images.names == ["golden retriever", "sorrel"]  # the person has no ImageNet class: the dog labels it
    assert images.boxes[0] == [(10, 20, 110, 120), (100, 100, 200, 200)]  # 1-based VOC corners lose 1, cat left out
    assert images.boxes[1] == [(0, 0, 224, 224)]
    (tmp_path / "voc_classes.json").write_text(json.dumps({"dog": "beagle", "person": "scuba diver"}))
    overridden = data.load_image_folder(tmp_path)
    assert overridden.names == ["scuba diver", "sorrel"] and overridden.boxes[0] == [(0, 0, 100, 224)]


def test_loc_val_solution_csv(tmp_path):
    make_image(tmp_path / "ILSVRC2012_val_00000003.JPEG", 224, 448, format="JPEG")  # 112 px cut at the top
    make_image(tmp_path / "ILSVRC2012_val_00000004.png", 224, 224)
    make_image(tmp_path / "not_listed.png", 224, 224)
    (tmp_path / annotations.LOC_CSV).write_text(
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000003,n01440764 10 120 100 200 n01440764 0 0 20 20 \n"
        "ILSVRC2012_val_00000004,n01443537 5 6 7 8\n")
    images = data.load_image_folder(tmp_path)
    assert images.ids == ["ILSVRC2012_val_00000003.JPEG", "ILSVRC2012_val_00000004.png"]
    assert images.names == ["tench", "goldfish"]
    assert images.boxes == [[(10, 8, 100, 88)], [(5, 6, 7, 8)]]


def test_labels_file_keeps_priority_and_the_fingerprint_covers_the_annotations(tmp_path):
    make_image(tmp_path / "a.png", 224, 224)
    (tmp_path / "a.xml").write_text(xml([("n01440764", (0, 0, 10, 10))]))
    run = {"images": str(tmp_path)}
    before = data.data_fingerprint(run, NO_DATA_DIR)
    assert set(before["files"]) == {"a.xml", "a.png"} and before["images"] == 1
    (tmp_path / "a.xml").write_text(xml([("n01440764", (0, 0, 20, 10))]))
    assert data.data_fingerprint(run, NO_DATA_DIR)["sha256"] != before["sha256"], "a changed box changes the data key"
    (tmp_path / "labels.json").write_text(json.dumps({"a.png": "quail"}))
    assert data.load_image_folder(tmp_path).names == ["quail"]
    assert set(data.data_fingerprint(run, NO_DATA_DIR)["files"]) == {"labels.json", "a.png"}


def _flat(tmp_path, text, name="a.xml"):
    make_image(tmp_path / "a.png", 100, 80)
    (tmp_path / name).write_text(text)


BAD = [
    ("malformed-xml", lambda p: _flat(p, "<annotation><object>"), "a.xml is not well-formed XML"),
    ("no-name", lambda p: _flat(p, xml([("", (1, 1, 5, 5))])), "a.xml: object 1 has no <name>"),
    ("no-bndbox", lambda p: _flat(p, "<annotation><object><name>n01440764</name></object></annotation>"),
     "has no <bndbox>"),
    ("no-object", lambda p: _flat(p, "<annotation><filename>a</filename></annotation>"), "a.xml has no <object>"),
    ("unknown-synset", lambda p: _flat(p, xml([("n99999999", (1, 1, 5, 5))])), "synset 'n99999999' is not one"),
    ("box-not-numeric", lambda p: _flat(p, xml([("n01440764", ("a", 1, 5, 5))])), "give four numbers"),
    ("box-missing-value", lambda p: _flat(p, "<annotation><object><name>n01440764</name><bndbox><xmin>1</xmin>"
                                             "</bndbox></object></annotation>"), "give four numbers"),
    ("box-inverted", lambda p: _flat(p, xml([("n01440764", (50, 1, 10, 5))])), "inverted"),
    ("box-outside", lambda p: _flat(p, xml([("n01440764", (10, 10, 101, 50))])), "outside the 100×80 image a.png"),
    ("size-mismatch", lambda p: _flat(p, xml([("n01440764", (1, 1, 5, 5))], size=(80, 100))), "<size> says 80×100"),
    ("image-missing", lambda p: _flat(p, xml([("n01440764", (1, 1, 5, 5))]), "b.xml"), "b.xml: no image named 'b'"),
    ("two-images", lambda p: (_flat(p, xml([("n01440764", (1, 1, 5, 5))])), make_image(p / "a.jpg", 9, 9)),
     "2 images (a.jpg, a.png)"),
    ("unknown-voc-class", lambda p: _flat(p, xml([("doggo", (1, 1, 5, 5))])), "class 'doggo' is neither"),
    ("only-persons", lambda p: _flat(p, xml([("person", (1, 1, 5, 5))])), "no object has an ImageNet class (person)"),
    ("voc-map-unknown", lambda p: (_flat(p, xml([("dog", (1, 1, 5, 5))])),
                                   (p / "voc_classes.json").write_text('{"dog": "doge"}')), "voc_classes.json: 'dog'"),
    ("csv-no-header", lambda p: _flat(p, "a,n01440764 1 1 5 5\n", annotations.LOC_CSV), "header 'ImageId,Prediction"),
    ("csv-groups", lambda p: _flat(p, "ImageId,PredictionString\na,n01440764 1 1 5\n", annotations.LOC_CSV),
     "LOC_val_solution.csv, line 2: needs"),
    ("csv-traversal", lambda p: _flat(p, "ImageId,PredictionString\n../a,n01440764 1 1 5 5\n", annotations.LOC_CSV),
     "line 2: needs"),
    ("csv-image-missing", lambda p: _flat(p, "ImageId,PredictionString\nb,n01440764 1 1 5 5\n", annotations.LOC_CSV),
     "line 2: no image named 'b'"),
    ("csv-twice", lambda p: _flat(p, "ImageId,PredictionString\na,n01440764 1 1 5 5\na,n01440764 1 1 5 5\n",
                                  annotations.LOC_CSV), "line 3: 'a' is listed twice"),
    ("csv-box-nan", lambda p: _flat(p, "ImageId,PredictionString\na,n01440764 1 1 nan 5\n", annotations.LOC_CSV),
     "not a finite number"),
    ("nothing", lambda p: make_image(p / "a.png", 9, 9), "no labels.json or labels.csv"),
]


@pytest.mark.parametrize("setup, says", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_annotations_are_one_line_errors(tmp_path, setup, says):
    setup(tmp_path)
    for read in (data.load_image_folder, lambda folder: data.data_fingerprint({"images": str(folder)}, NO_DATA_DIR)):
        if read is not data.load_image_folder and says.startswith(("outside", "<size>")):
            continue  # box against image size: checked when the folder is loaded, from the image's header
        with pytest.raises(NetvizError) as caught:
            read(tmp_path)
        message = str(caught.value)
        assert says in message and "\n" not in message


def test_written_imagenet_folder_reads_back(tmp_path, course_images):
    folder = imagenet_folder.write_imagenet_folder(course_images, tmp_path / "inet", copies=4)
    n = len(course_images)
    assert len(list(folder.glob("*.png"))) == len(list(folder.glob("*.xml"))) == 4 * n
    images = data.load_image_folder(folder)
    assert images.labels.tolist() == course_images.labels.tolist() * 4
    assert torch.equal(images.pixels(range(n)), course_images.images), "copy 0 is each image itself"
    assert images.boxes[:n] == course_images.boxes
    mirrored = [[(224 - b[2], b[1], 224 - b[0], b[3]) for b in boxes] for boxes in course_images.boxes]
    assert images.boxes[n : 2 * n] == mirrored
    assert torch.equal(images.pixels([n + 3])[0], course_images.images[3].flip(-1))
    for i in range(n):  # copy 2: the window x 16..224, y 0..208 of the image itself
        objects, size = annotations.read_xml(folder / f"ILSVRC2012_val_{2 * n + i + 1:08d}.xml")
        inside = [(max(b[0], 16) - 16, b[1], b[2] - 16, min(b[3], 208)) for b in course_images.boxes[i]]
        assert size == (208, 208) and [box for _, box in objects] == [b for b in inside if b[0] < b[2] and b[1] < b[3]]
    cropped = images.pixels(range(2 * n, 4 * n))
    assert cropped.shape == (2 * n, 3, 224, 224) and all(images.boxes[2 * n :])
    again = imagenet_folder.write_imagenet_folder(course_images, tmp_path / "again", copies=4)
    assert (data.data_fingerprint({"images": str(again)}, NO_DATA_DIR)["files"]
            == data.data_fingerprint({"images": str(folder)}, NO_DATA_DIR)["files"])


@pytest.mark.parametrize("parquet", [True, False])
def test_write_table_round_trip(tmp_path, monkeypatch, parquet):
    rows = [{"image": "a.png", "model": "squeezenet1_1", "hit": True, "score": 0.25},
            {"image": "b.png", "model": "squeezenet1_1", "hit": False, "score": 0.5}]
    with monkeypatch.context() as patch:
        if not parquet:
            patch.setitem(sys.modules, "pyarrow", None)  # import pyarrow fails while writing: the CSV fallback
        path = tables.write_table(rows, tmp_path / "per_image")
    assert path == tmp_path / ("per_image.parquet" if parquet else "per_image.csv")
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary file is left"
    pd.testing.assert_frame_equal(tables.read_table(path), pd.DataFrame(rows))


def test_intervals():
    flags = [True, False, True, True, None]
    assert tables.rate_interval(flags) == {"rate": 0.75, "k": 3, "n": 4, "ci": claims.wilson(3, 4),
                                           "method": "Wilson 95 %"}
    values = [1.0, 2.0, 4.0, float("nan"), None]
    result = tables.mean_interval(values)
    kept = np.array([1.0, 2.0, 4.0])
    half = stats.t.ppf(0.975, 2) * kept.std(ddof=1) / np.sqrt(3)
    assert result["n"] == 3 and result["mean"] == pytest.approx(7 / 3, abs=1e-4)
    assert result["ci"] == pytest.approx([7 / 3 - half, 7 / 3 + half], abs=1e-4)
    assert tables.mean_interval([5.0])["ci"] is None and tables.mean_interval([2.0, 2.0])["ci"] == [2.0, 2.0]
    assert tables.rate_interval([])["ci"] is None
