"""``netviz bench``: how fast each experiment's work runs, against this machine's own arithmetic rate, against the
per-image loop and the libraries, and spread over Ray workers.

- ``netviz``: the section's OWN jobs (``module.jobs(ctx)``, the same jobs ``netviz run`` and the Ray executor
  run), each run with :func:`netviz.executors.compute` on the loaded models, on the section's default work (its
  config's models and images; iterative methods capped at ``bench.max_steps`` steps through their step keys,
  every step costing the same; saliency_methods on its first ``bench.map_images`` images). One row per model. A
  section without ``jobs(ctx)`` yet is skipped with a note.
- comparisons: the per-image loop a lab notebook would write (plain PyTorch, one image at a time, NCHW, fp32) and a
  library where one exists (Captum for saliency, torchattacks for attacks), on comparable work.

Each variant is warmed up (the first of a workload by a run whose FLOPs are counted with
``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix products, forward and backward; elementwise
work is not counted), then timed ``bench.repeats`` times (the median counts; fewer once ``bench.time_limit_s`` is
used, at least once). The physical anchor is this machine's fp32 matrix-multiply rate, measured in the same run
(:func:`~netviz.bench.timing.matmul_rate`) right before each row's timing (on a shared machine it drifts with the load): every row
gives its GFLOP/s as a share of it. The comparisons' GFLOP/s are set against
netviz's jobs on the same experiment and model (``speedup``: how many times lower the comparison's rate is).
``max_abs_diff`` compares a comparison's output with netviz's job results where both compute the same maps.

Also measured: peak memory of VGG16 gradient passes under memory budgets, each in a fresh process
(:func:`~netviz.bench.memory.memory_child`); how far bf16 autocast moves results from fp32
(:func:`~netviz.bench.precision.precision_checks`); and with ``bench.scaleout`` the Ray part
(:mod:`netviz.bench.scaleout`: per-job overhead, throughput over 1 and 2 workers, the projection to a large run).

Writes ``results/bench/bench.json`` (everything), ``bench.csv`` and ``bench.md`` (the tables) and
``figures/bench/bench_speedup.png``. Not part of ``netviz run``: the report adds an appendix when
``results/bench/bench.json`` exists. The file is named so that grading, which compares sections' ``metrics.json``,
never looks at timings.

Modules: ``timing`` (what is timed, FLOPs, the matmul rate, one row per variant), ``harness`` (:class:`Bench` and
the timing of a section's own jobs), ``comparisons`` (the loops and libraries, one module per section),
``memory``, ``precision``, ``scaleout`` (the Ray part), ``output`` (summary, CSV, markdown) and ``run``
(:func:`run_bench`: all of it, and the outputs written).
"""

from netviz.bench.run import run_bench

__all__ = ["run_bench"]
