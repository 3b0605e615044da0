"""Executors on a real local Ray instance (2 CPUs): the same results as in one process, a killed worker changes
nothing, and a killed driver resumes with the jobs it had not finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from netviz.config import load_config
from netviz.experiments import runner

from conftest import CHEAP_BUILD, REPO

ray = pytest.importorskip("ray")

TIMING_KEYS = ("seconds", "wall_time_s", "timings_s", "wall_s")


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with 2 CPUs for this module (as `netviz run --executor ray` starts one)."""
    from netviz.executors import start_ray

    started = start_ray(num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


def without_timings(value):
    """metrics.json without wall-clock measurements (which differ between any two runs)."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def metrics(root: Path, section: str) -> dict:
    return without_timings(json.loads((root / "results" / section / "metrics.json").read_text()))


def build(root: Path, data_dir: Path, *overrides: str, only=("saliency",), log=None) -> list[str]:
    lines: list[str] = []
    config = load_config(overrides=[*CHEAP_BUILD, f'run.data_dir="{data_dir}"', *overrides])
    runner.run_experiments(config, root, only=list(only), log=log or lines.append)
    return lines


ONE_THREAD = ("run.threads=1", "run.shard_size=5")


@pytest.mark.slow
def test_ray_gives_the_results_of_one_process(tmp_path, data_dir, local_ray):
    """SqueezeNet saliency in 5 jobs: one process with one thread, and Ray with two one-thread workers."""
    build(tmp_path / "local", data_dir, *ONE_THREAD)
    lines = build(tmp_path / "ray", data_dir, *ONE_THREAD, "run.executor=\"ray\"")
    assert "  saliency: 0 of 5 jobs cached, 5 to run (gradient)" in lines
    assert metrics(tmp_path / "local", "saliency") == metrics(tmp_path / "ray", "saliency")
    for name in ("maps_squeezenet1_1.npz",):
        assert (tmp_path / "local/results/saliency" / name).read_bytes() == (tmp_path / "ray/results/saliency" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "local/results/.jobs/saliency").iterdir()) == \
        sorted(p.name for p in (tmp_path / "ray/results/.jobs/saliency").iterdir())  # the same job keys


def actor_pids() -> list[int]:
    """Processes of netviz's Ray actors (Ray names them ``ray::_JobActor...``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::_JobActor"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.slow
def test_killed_ray_worker_changes_nothing(tmp_path, data_dir, local_ray):
    """A worker process killed (SIGKILL) while jobs are in flight: Ray restarts the actor and retries its jobs,
    and the results are those of an undisturbed run."""
    settings = (*ONE_THREAD, "run.shard_size=2", "run.executor=\"ray\"")
    build(tmp_path / "calm", data_dir, *settings)
    stored = tmp_path / "hit/results/.jobs/saliency"
    killed: list[int] = []

    def kill_one_worker():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            pids = actor_pids()
            done = len(list(stored.glob("*.npz"))) if stored.is_dir() else 0
            if pids and 1 <= done < 10:  # mid-run: some of the 13 jobs stored, most still to come
                os.kill(pids[0], signal.SIGKILL)
                killed.append(done)
            time.sleep(0.05)

    thread = threading.Thread(target=kill_one_worker)
    thread.start()
    build(tmp_path / "hit", data_dir, *settings)
    thread.join()
    assert killed, "no worker was killed while the run had jobs left"
    assert metrics(tmp_path / "calm", "saliency") == metrics(tmp_path / "hit", "saliency")
    assert (tmp_path / "calm/results/saliency/maps_squeezenet1_1.npz").read_bytes() == \
        (tmp_path / "hit/results/saliency/maps_squeezenet1_1.npz").read_bytes()


@pytest.mark.slow
def test_killed_driver_resumes_with_the_missing_jobs(tmp_path, data_dir):
    """`netviz run` killed by SIGKILL after some jobs were stored: the next run computes only the others (its
    count says so) and ends with the results of an uninterrupted run."""
    overrides = [*CHEAP_BUILD, "run.shard_size=2", "run.threads=1", f'run.data_dir="{data_dir}"']
    command = [sys.executable, "-m", "netviz", "run", "--only", "saliency", *(a for o in overrides for a in ("--set", o))]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for name in ("whole", "killed"):
        (tmp_path / name).mkdir()
    subprocess.run(command, cwd=tmp_path / "whole", env=env, check=True, capture_output=True)
    stored = tmp_path / "killed/results/.jobs/saliency"
    process = subprocess.Popen(command, cwd=tmp_path / "killed", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if stored.is_dir() and len(list(stored.glob("*.npz"))) >= 3:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done = len(list(stored.glob("*.npz")))
    assert 3 <= done < 13 and not (tmp_path / "killed/results/saliency/metrics.json").exists()
    again = subprocess.run(command, cwd=tmp_path / "killed", env=env, check=True, capture_output=True, text=True)
    assert f"saliency: {done} of 13 jobs cached, {13 - done} to run (gradient)" in again.stdout
    assert metrics(tmp_path / "whole", "saliency") == metrics(tmp_path / "killed", "saliency")
    assert (tmp_path / "whole/results/saliency/maps_squeezenet1_1.npz").read_bytes() == \
        (tmp_path / "killed/results/saliency/maps_squeezenet1_1.npz").read_bytes()


@pytest.fixture(scope="module")
def imagenet_folder(tmp_path_factory, course_images):
    """About 100 images in ImageNet's validation layout: the course's 25 with mirrored and cropped copies."""
    from netviz.imagenet_folder import write_imagenet_folder

    return write_imagenet_folder(course_images, tmp_path_factory.mktemp("imagenet") / "val", copies=4)


# Sections and settings for the 100-image comparison: the saliency-methods work with fewer samples and steps.
FOLDER_SECTIONS = ("saliency", "saliency_methods")
FOLDER_BUILD = ('saliency_methods.models=["squeezenet1_1"]', "saliency_methods.smoothgrad_samples=2",
                "saliency_methods.ig_steps=2", "saliency_methods.perturbation_steps=2",
                "saliency_methods.randomization_images=1", "run.shard_size=25", "run.threads=1")


@pytest.mark.slow
def test_ray_gives_the_results_of_one_process_on_100_images(tmp_path, data_dir, imagenet_folder, local_ray):
    """The ImageNet-layout folder of 100 images, read lazily, in shards of 25: one process with one thread and
    Ray with two one-thread workers store the same metrics, per-image tables and job keys."""
    folder = f'run.images="{imagenet_folder}"'
    build(tmp_path / "local", data_dir, *FOLDER_BUILD, folder, only=FOLDER_SECTIONS)
    lines = build(tmp_path / "ray", data_dir, *FOLDER_BUILD, folder, "run.executor=\"ray\"", only=FOLDER_SECTIONS)
    assert "  saliency: 0 of 4 jobs cached, 4 to run (gradient)" in lines
    for section in FOLDER_SECTIONS:
        assert metrics(tmp_path / "local", section) == metrics(tmp_path / "ray", section), section
        jobs = [sorted(p.name for p in (root / "results/.jobs" / section).iterdir()) for root in (tmp_path / "local", tmp_path / "ray")]
        assert jobs[0] == jobs[1] and len(jobs[0]) >= 4
    m = metrics(tmp_path / "local", "saliency")["models"]["squeezenet1_1"]
    assert m["n"] == 100 and m["scored"] == 100 and m["drawn"] == 100
    table = (tmp_path / "local/results/saliency/per_image_squeezenet1_1.parquet")
    assert table.read_bytes() == (tmp_path / "ray/results/saliency/per_image_squeezenet1_1.parquet").read_bytes()


def full_build(root: Path, *overrides: str) -> None:
    config = load_config(overrides=['run.device="cpu"', *overrides])
    runner.run_experiments(config, root, log=lambda line: None)


@pytest.mark.slow
def test_default_build_on_ray(tmp_path, local_ray):
    """The default configuration, every section: Ray with one two-thread worker per model stores exactly what one
    process with two threads stores; Ray with two one-thread workers (other rounding in the iterative attacks)
    passes grading against the shipped expected set."""
    from netviz import grading
    from netviz.sections import SECTIONS

    full_build(tmp_path / "local", "run.threads=2")
    full_build(tmp_path / "ray", "run.threads=2", "run.executor=\"ray\"", "run.cpus_per_job=2")
    for section in SECTIONS:
        assert metrics(tmp_path / "local", section) == metrics(tmp_path / "ray", section), section
        for figure in sorted((tmp_path / "local/figures" / section).glob("*.png")):
            assert figure.read_bytes() == (tmp_path / "ray/figures" / section / figure.name).read_bytes(), figure.name
    full_build(tmp_path / "ray1", "run.executor=\"ray\"", "run.cpus_per_job=1", "run.threads=1")
    result = grading.grade(grading.load_expected(REPO / "expected/default"), grading.load_build(tmp_path / "ray1"),
                           load_config()["grade"])
    assert result.passed, [f"{c.section} {c.name}: {c.detail}" for c in result.failures()[:5]]
