"""Matplotlib figure builders shared by the experiments (no file I/O: they return figures), by figure family:

- :mod:`netviz.plots.common`: PNG bytes, panels, boxes and points, images over maps, image grids, sweep curves;
- :mod:`netviz.plots.methods`: saliency methods side by side, deletion/insertion, the randomization check;
- :mod:`netviz.plots.adversarial`: adversarial examples, success against ε, transfer matrices;
- :mod:`netviz.plots.bench`: the benchmark's speed-ups.

Images come as H×W×3 float arrays in [0, 1]; maps as H×W arrays (any scale: each is shown min-max scaled).
Every builder is importable from here (``plots.method_grid``).
"""

from __future__ import annotations

from netviz.plots.adversarial import (ATTACK_COLORS, ATTACK_LABELS, NORM_LABELS, adversarial_rows, success_curves,
                                      transfer_matrices)
from netviz.plots.bench import bench_speedups
from netviz.plots.common import (display_scaled, draw_boxes, frameless, image_grid, images_over_maps, mark_point, plt,
                                 png_bytes, short, sweep_curves, to_hwc)
from netviz.plots.methods import (method_colors, method_grid, perturbation_figure, randomization_examples,
                                  randomization_figure)

__all__ = ["ATTACK_COLORS", "ATTACK_LABELS", "NORM_LABELS", "adversarial_rows", "bench_speedups", "display_scaled",
           "draw_boxes", "frameless", "image_grid", "images_over_maps", "mark_point", "method_colors", "method_grid",
           "perturbation_figure", "plt", "png_bytes", "randomization_examples", "randomization_figure", "short",
           "success_curves", "sweep_curves", "to_hwc", "transfer_matrices"]
