"""The comparisons of ``netviz bench``, one module per section: the per-image loop a lab notebook would write
(plain PyTorch, one image at a time, NCHW, fp32) and a library where one exists (Captum for saliency, torchattacks
for attacks), on work comparable to the section's jobs. :data:`WORKLOADS` maps a section to its builder."""

from __future__ import annotations

from typing import Callable, Iterator

from netviz.bench.comparisons.adversarial import adversarial_workloads
from netviz.bench.comparisons.classviz import classviz_workloads
from netviz.bench.comparisons.saliency import saliency_workloads
from netviz.bench.comparisons.saliency_methods import saliency_methods_workloads
from netviz.bench.harness import Bench
from netviz.bench.timing import Workload

# Section name -> its comparisons (loop, library); netviz's own side is the section's jobs (job_rows).
WORKLOADS: dict[str, Callable[[Bench], Iterator[Workload]]] = {
    "saliency": saliency_workloads,
    "saliency_methods": saliency_methods_workloads,
    "classviz": classviz_workloads,
    "adversarial": adversarial_workloads,
}
