"""Pointing game on hand-made maps and boxes: hit, miss, and the tolerance's edge (TorchRay's strict rule)."""

import numpy as np
import pytest

from netviz import metrics


def peak_at(x: int, y: int, shape=(100, 100)) -> np.ndarray:
    saliency = np.zeros(shape)
    saliency[y, x] = 1.0
    return saliency


def test_argmax_point_is_x_then_y():
    assert metrics.argmax_point(peak_at(70, 20)) == (70, 20)


def test_hit_inside_box():
    point = metrics.argmax_point(peak_at(30, 40))
    assert metrics.pointing_hit(point, [(20, 30, 50, 60)], (100, 100), tolerance=15)


def test_miss_far_from_box():
    point = metrics.argmax_point(peak_at(90, 90))
    assert not metrics.pointing_hit(point, [(20, 30, 50, 60)], (100, 100), tolerance=15)


@pytest.mark.parametrize("distance, hit", [(14, True), (15, False), (16, False)])
def test_tolerance_is_strict(distance, hit):
    # box covers columns 10..19 (x1=20 exclusive); the nearest box pixel is column 19
    box = (10, 40, 20, 60)
    point = (19 + distance, 50)
    assert metrics.pointing_hit(point, [box], (100, 100), tolerance=15) is hit


def test_union_of_boxes_counts():
    boxes = [(0, 0, 10, 10), (80, 80, 90, 90)]
    assert metrics.pointing_hit((85, 85), boxes, (100, 100), tolerance=1)
    assert not metrics.pointing_hit((50, 50), boxes, (100, 100), tolerance=15)


def test_diagonal_distance_is_euclidean():
    box = (0, 0, 10, 10)  # nearest pixel to (20, 20) is (9, 9): distance sqrt(242) ≈ 15.56
    assert not metrics.pointing_hit((20, 20), [box], (100, 100), tolerance=15)
    assert metrics.pointing_hit((20, 20), [box], (100, 100), tolerance=16)


def test_center_point_and_box_fraction():
    assert metrics.center_point((224, 224)) == (112, 112)
    assert metrics.box_area_fraction([(0, 0, 112, 224)], (224, 224)) == pytest.approx(0.5)


def test_top_mass_share_single_peak_and_flat():
    assert metrics.top_mass_share(peak_at(3, 4), 0.01) == pytest.approx(1.0)
    assert metrics.top_mass_share(np.ones((100, 100)), 0.01) == pytest.approx(0.01)
