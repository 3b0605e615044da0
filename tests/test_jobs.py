"""Jobs: specs, content keys, the job store, and the runner's cache and resume (local executor, real SqueezeNet)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from netviz.config import load_config
from netviz.executors import JobRunner, LocalExecutor
from netviz.experiments import runner
from netviz.jobs import Job, JobStore, decode, encode, job_key, section_base, shards

from conftest import CHEAP_BUILD


def test_params_freeze_and_read_back():
    job = Job.make("saliency", "gradient", "squeezenet1_1", [3, 4], eps=[1, 2], seed=0, batch_size=np.int64(8))
    assert job.params == (("batch_size", 8), ("eps", (1, 2)), ("seed", 0))
    assert job["eps"] == (1, 2) and job.get("missing", 5) == 5
    assert hash(job) == hash(Job.make("saliency", "gradient", "squeezenet1_1", (3, 4), seed=0, eps=(1, 2), batch_size=8))
    with pytest.raises(KeyError, match="no setting 'missing'"):
        job["missing"]
    assert job.label() == "saliency/gradient squeezenet1_1 images 3-4 (2)"


def test_shards_cover_every_position_once_in_order():
    assert shards(7, 3) == [(0, 1, 2), (3, 4, 5), (6,)]
    assert shards(7, 0) == [tuple(range(7))]
    assert shards(25, 32) == [tuple(range(25))]
    assert shards(0, 4) == []


def test_key_changes_with_what_the_job_reads_only():
    base = {"code x": "1", "device": "cpu", "weights m": "aa", "weights other": "bb"}
    job = Job.make("s", "k", "m", [0, 1], seed=0)
    key = job_key(job, base, ["h0", "h1"])
    assert key == job_key(job, {**base, "weights other": "changed"}, ["h0", "h1"])  # another model's weights
    assert key != job_key(job, {**base, "weights m": "changed"}, ["h0", "h1"])
    assert key != job_key(job, base, ["h0", "CHANGED"])  # one of its images
    assert key != job_key(Job.make("s", "k", "m", [0, 1], seed=1), base, ["h0", "h1"])
    assert key != job_key(job, {**base, "code x": "2"}, ["h0", "h1"])
    with_inputs = Job.make("s", "k", "m", [0], pixels=False, inputs={"a": np.zeros(3, np.uint8)})
    other_inputs = Job.make("s", "k", "m", [0], pixels=False, inputs={"a": np.ones(3, np.uint8)})
    assert with_inputs == other_inputs  # equal specs ...
    assert job_key(with_inputs, base, []) != job_key(other_inputs, base, [])  # ... whose keys see the inputs


def test_encode_decode_round_trip_without_pickle(tmp_path):
    result = {"maps": np.arange(6, dtype=np.float32).reshape(2, 3), "probs": torch.ones(2, 2),
              "steps": [3, -1], "name": "x", "p": np.float64(0.25), "nested": {"a": [1.5, None]}}
    back = decode(encode(result))
    assert back["maps"].dtype == np.float32 and np.array_equal(back["maps"], result["maps"])
    assert np.array_equal(back["probs"], np.ones((2, 2), np.float32))
    assert back["steps"] == [3, -1] and back["name"] == "x" and back["p"] == 0.25 and back["nested"] == {"a": [1.5, None]}
    with pytest.raises(TypeError, match="neither an array nor JSON"):
        encode({"bad": object()})


def test_store_keeps_what_was_put_ignores_damage_and_prunes(tmp_path):
    store = JobStore(tmp_path, "saliency")
    store.put("k1", encode({"a": np.ones(2)}))
    store.put("k2", encode({"a": np.zeros(2)}))
    assert np.array_equal(store.get("k1")["a"], np.ones(2)) and store.get("nope") is None
    store.path("k2").write_bytes(b"not an npz")
    assert store.get("k2") is None  # computed again, never a crash
    assert store.prune({"k1"}) == 1 and store.get("k1") is not None and not store.path("k2").exists()


class CountingExecutor(LocalExecutor):
    def __init__(self, *args):
        super().__init__(*args)
        self.ran: list[Job] = []

    def run(self, jobs, images):
        self.ran.extend(jobs)
        yield from super().run(jobs, images)


def test_runner_computes_missing_jobs_only_and_results_match(tmp_path, squeezenet, course_images):
    """Real SqueezeNet gradients: the first call runs both jobs; the second reads them back identical; a job with
    another image computes only that job."""
    from netviz.models import LoadedModel

    loaded = LoadedModel(squeezenet, "", "sha")
    executor = CountingExecutor(lambda name: loaded, torch.device("cpu"))
    base = section_base("saliency", "cpu", {"squeezenet1_1": "sha"})
    log: list[str] = []
    run = JobRunner("saliency", executor, JobStore(tmp_path, "saliency"), base, course_images, log.append)
    jobs = [Job.make("saliency", "gradient", "squeezenet1_1", s, batch_size=3, seed=0) for s in shards(6, 3)]
    first = run(jobs)
    assert len(executor.ran) == 2 and log[-1] == "saliency: 0 of 2 jobs cached, 2 to run (gradient)"
    assert first[0]["maps"].shape == (3, 224, 224) and first[1]["probs"].shape == (3, 1000)
    again = run(jobs)
    assert len(executor.ran) == 2 and log[-1] == "saliency: 2 of 2 jobs cached, 0 to run (gradient)"
    for a, b in zip(first, again):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    extra = Job.make("saliency", "gradient", "squeezenet1_1", (6,), batch_size=3, seed=0)
    run([*jobs, extra])
    assert executor.ran[-1] == extra and len(executor.ran) == 3 and log[-1] == "saliency: 2 of 3 jobs cached, 1 to run (gradient)"


@pytest.mark.slow
def test_scoring_only_key_rescores_from_cached_jobs(tmp_path, data_dir):
    """Changing the pointing game's tolerance re-runs the section from its stored jobs; with another shard size
    the jobs read other images, so they run again."""
    log: list[str] = []

    def build(*overrides):
        config = load_config(overrides=[*CHEAP_BUILD, f'run.data_dir="{data_dir}"', *overrides])
        log.clear()
        runner.run_experiments(config, tmp_path, only=["saliency"], log=log.append)
        return [line.strip() for line in log]

    assert "saliency: 0 of 1 job cached, 1 to run (gradient)" in build()
    lines = build("saliency.tolerance_px=5")
    assert "saliency: re-running: saliency.tolerance_px: 15 -> 5" in lines
    assert "saliency: 1 of 1 job cached, 0 to run (gradient)" in lines
    assert "saliency: 0 of 3 jobs cached, 3 to run (gradient)" in build("saliency.tolerance_px=7", "run.shard_size=10")
    assert len(list((tmp_path / "results/.jobs/saliency").glob("*.npz"))) == 3  # the one-shard job was pruned
