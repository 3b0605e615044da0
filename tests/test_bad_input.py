"""The catalogue of bad input (issue 15): every user mistake and environmental fault ends in one line that names
the thing, exit status 2, no traceback, and results/ and figures/ exactly as they were; nothing is computed
quietly from bad input; damaged derived files are rebuilt.

All cases run the real command line (:func:`netviz.cli.main`, in this process) in a copy of one small prepared
build: SqueezeNet saliency on two course images given as a folder of PNGs with labels and boxes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from netviz import cli, data, store

SETS = ["--set", 'saliency.models=["squeezenet1_1"]', "--set", "saliency.num_shown=2"]


@dataclass
class Env:
    """Where a case runs: ``work`` (a copy of the prepared build, the working directory), the real data dir,
    the real SqueezeNet weights file and the pytest monkeypatch."""

    work: Path
    data_dir: Path
    weights: Path
    monkeypatch: pytest.MonkeyPatch

    def run(self, *extra: str, images: str | None = "imgs") -> list[str]:
        """argv of a run like the prepared one, with ``extra`` arguments (``images=None``: the course npz)."""
        return ["run", "--only", "saliency", "--data-dir", str(self.data_dir), "--device", "cpu", *SETS,
                *(["--images", images] if images else []), *extra]


@dataclass
class Case:
    id: str
    argv: Callable[[Env], list[str]]
    says: str  # a piece of the one-line message (the thing it names)
    setup: Callable[[Env], None] | None = None
    status: int = 2


# ---------------------------------------------------------------------------------------------------- helpers


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def labels(folder: str, entries) -> Callable[[Env], None]:
    """Setup: ``folder`` (under work) holds the prepared images and this labels.json (a JSON text or an object)."""
    def setup(env: Env) -> None:
        target = env.work / folder
        if target != env.work / "imgs":
            shutil.copytree(env.work / "imgs", target)
        (target / "labels.json").unlink()
        write(target / "labels.json", entries if isinstance(entries, (str, bytes)) else json.dumps(entries))
    return setup


def csv_labels(text: str) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        (env.work / "imgs" / "labels.json").unlink()
        write(env.work / "imgs" / "labels.csv", text)
    return setup


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width``×``height`` (its header only; PIL refuses it as a decompression bomb on open)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def weights_variant(change: Callable[[dict], object]) -> Callable[[Env], None]:
    """Setup: work/w.pth holds the real SqueezeNet state_dict changed by ``change``."""
    def setup(env: Env) -> None:
        state = torch.load(env.weights, map_location="cpu", weights_only=True)
        torch.save(change(state), env.work / "w.pth")
    return setup


def course_npz(make: Callable[[Env, Path], None]) -> Callable[[Env], None]:
    """Setup: work/dd is a data dir whose course npz is made by ``make`` (weights still found by name)."""
    def setup(env: Env) -> None:
        (env.work / "dd").mkdir()
        make(env, env.work / "dd" / data.COURSE_NPZ)
    return setup


def truncated(source: Callable[[Env], Path], keep: float) -> Callable[[Env, Path], None]:
    def make(env: Env, path: Path) -> None:
        raw = source(env).read_bytes()
        path.write_bytes(raw[: int(len(raw) * keep)])
    return make


def course_file(env: Env) -> Path:
    return env.data_dir / data.COURSE_NPZ


def raise_oserror(code: int, target: str) -> Callable[[Env], None]:
    """Setup: the first write of ``target`` (``staging`` folder or ``json`` file) fails with OS error ``code``."""
    def setup(env: Env) -> None:
        def fail(path, *args, **kwargs):
            raise OSError(code, __import__("os").strerror(code), str(path))

        env.monkeypatch.setattr(store, {"staging": "staging_dir", "json": "write_text_atomic"}[target], fail)
    return setup


def w_set(path: str = "w.pth") -> Callable[[Env], list[str]]:
    return lambda env: env.run("--set", f'models.weights.squeezenet1_1="{path}"')


def set_(*pairs: str) -> Callable[[Env], list[str]]:
    return lambda env: env.run(*[arg for pair in pairs for arg in ("--set", pair)])


def run_in(folder: str) -> Callable[[Env], list[str]]:
    return lambda env: env.run(images=folder)


def grade_args(env: Env) -> list[str]:
    return ["grade", "--expected", "exp", "--html", ""]


def damage_figure(rel_in: str) -> Callable[[Env], None]:
    """Setup: cut the first figure listed in saliency's manifest to half, under ``rel_in`` ('exp' or '.')."""
    def setup(env: Env) -> None:
        root = env.work / rel_in
        manifest = json.loads((root / "results/saliency/manifest.json").read_text())
        figure = root / manifest["figures"][0]
        figure.write_bytes(figure.read_bytes()[: figure.stat().st_size // 2])
    return setup


# ------------------------------------------------------------------------------------------------- the catalogue

CONFIG_CASES = [
    Case("seed-negative", set_("run.seed=-1"), "run.seed"),
    Case("seed-float", set_("run.seed=1.5"), "run.seed"),
    Case("num-shown-zero", set_("saliency.num_shown=0"), "saliency.num_shown"),
    Case("tolerance-negative", set_("saliency.tolerance_px=-100"), "saliency.tolerance_px"),
    Case("memory-nan", set_("run.memory_budget_gb=nan"), "run.memory_budget_gb"),
    Case("memory-zero", set_("run.memory_budget_gb=0"), "run.memory_budget_gb"),
    Case("gpu-memory-negative", set_("run.gpu_memory_budget_gb=-1"), "run.gpu_memory_budget_gb"),
    Case("batch-negative", set_("run.batch_size=-4"), "run.batch_size"),
    Case("classviz-lr-nan", set_("classviz.learning_rate=nan"), "classviz.learning_rate"),
    Case("classviz-lr-inf", set_("classviz.learning_rate=inf"), "classviz.learning_rate"),
    Case("classviz-iterations-zero", set_("classviz.num_iterations=0"), "classviz.num_iterations"),
    Case("classviz-target-1000", set_("classviz.target=1000"), "classviz.target"),
    Case("classviz-gallery-negative", set_("classviz.gallery=[76, -1]"), "classviz.gallery"),
    Case("classviz-sweep-lr-nan", set_("classviz.sweep_learning_rates=[1.0, nan]"), "classviz.sweep_learning_rates"),
    Case("fooling-lr-nan", set_("adversarial.fooling_lr=nan"), "adversarial.fooling_lr"),
    Case("eps-negative", set_("adversarial.eps_grid=[-1.0]"), "adversarial.eps_grid"),
    Case("transfer-eps-negative", set_("adversarial.transfer_eps=-8"), "adversarial.transfer_eps"),
    Case("attack-steps-zero", set_("adversarial.steps=0"), "adversarial.steps"),
    Case("jpeg-quality-101", set_("adversarial.jpeg_quality=101"), "adversarial.jpeg_quality"),
    Case("kappa-2", set_("adversarial.fooling_kappa=2"), "adversarial.fooling_kappa"),
    Case("randomization-fraction-1.5", set_("saliency_methods.randomization_fractions=[0.0, 1.5]"),
         "saliency_methods.randomization_fractions"),
    Case("ig-steps-zero", set_("saliency_methods.ig_steps=0"), "saliency_methods.ig_steps"),
    Case("smoothgrad-sigma-negative", set_("saliency_methods.smoothgrad_sigma=-0.1"), "saliency_methods.smoothgrad_sigma"),
    Case("bench-repeats-zero", set_("bench.repeats=0"), "bench.repeats"),
    Case("grade-ssim-nan", set_("grade.ssim_min=nan"), "grade.ssim_min"),
    Case("tolerance-pattern-nan", set_('grade.tolerances."x.y"={abs=nan}'), "grade.tolerances"),
    Case("unknown-key", set_("saliency.tolerence_px=3"), "saliency.tolerence_px"),
    Case("set-without-value", set_("saliency.num_shown"), "KEY=VALUE"),
    Case("overlay-not-utf8", lambda env: env.run("--config", "o.toml"), "not UTF-8",
         lambda env: write(env.work / "o.toml", "[saliency]\n# caf\xe9\n".encode("latin-1"))),
    Case("overlay-folder", lambda env: env.run("--config", "imgs"), "is a folder"),
    Case("overlay-missing", lambda env: env.run("--config", "nope.toml"), "nope.toml"),
    Case("overlay-bad-toml", lambda env: env.run("--config", "o.toml"), "not valid TOML",
         lambda env: write(env.work / "o.toml", "[saliency\n")),
    Case("overlay-unknown-section", lambda env: env.run("--config", "o.toml"), "salency",
         lambda env: write(env.work / "o.toml", "[salency]\nnum_shown = 2\n")),
    Case("overlay-nan", lambda env: env.run("--config", "o.toml"), "classviz.learning_rate",
         lambda env: write(env.work / "o.toml", "[classviz]\nlearning_rate = nan\n")),
]

DATA_CASES = [
    Case("data-dir-is-a-file", lambda env: env.run("--data-dir", "f", images=None), "is a file",
         lambda env: write(env.work / "f", "x")),
    Case("npz-truncated", lambda env: env.run("--data-dir", "dd", images=None), "corrupt",
         course_npz(truncated(course_file, 0.5))),
    Case("npz-zero-bytes", lambda env: env.run("--data-dir", "dd", images=None), "corrupt",
         course_npz(truncated(course_file, 0.0))),
    Case("npz-without-y", lambda env: env.run("--data-dir", "dd", images=None), "corrupt",
         course_npz(lambda env, p: np.savez(p, X=np.zeros((1, 224, 224, 3), np.uint8)))),
    Case("npz-object-array", lambda env: env.run("--data-dir", "dd", images=None), "corrupt",
         course_npz(lambda env, p: np.savez(p, X=np.array([{"a": 1}], dtype=object), y=np.zeros(1)))),
    Case("npz-is-a-folder", lambda env: env.run("--data-dir", "dd", images=None), "is a folder",
         course_npz(lambda env, p: p.mkdir())),
    Case("weights-folder", w_set("wdir"), "is a folder", lambda env: (env.work / "wdir").mkdir()),
    Case("weights-data-dir-folder", lambda env: env.run("--data-dir", "dd"), "is a folder",
         lambda env: (env.work / "dd" / "weights" / "squeezenet1_1.pth").mkdir(parents=True)),
    Case("weights-missing", w_set("none.pth"), "none.pth"),
    Case("weights-int32", w_set(), "int32",
         weights_variant(lambda s: {k: (v * 100).to(torch.int32) for k, v in s.items()})),
    Case("weights-all-nan", w_set(), "NaN",
         weights_variant(lambda s: {k: torch.full_like(v, float("nan")) for k, v in s.items()})),
    Case("weights-one-inf", w_set(), "infinite",
         weights_variant(lambda s: {**s, "classifier.1.bias": torch.full_like(s["classifier.1.bias"], float("inf"))})),
    Case("weights-not-a-state-dict", w_set(), "not a state_dict", weights_variant(lambda s: torch.zeros(3))),
    Case("weights-other-model", w_set(), "does not fit",
         weights_variant(lambda s: {k: v for k, v in list(s.items())[:-2]})),
    Case("weights-truncated", w_set(), "cannot be read",
         lambda env: write(env.work / "w.pth", env.weights.read_bytes()[:100_000])),
    Case("weights-zero-bytes", w_set(), "cannot be read", lambda env: write(env.work / "w.pth", b"")),
    Case("weights-pickled-code", w_set(), "cannot be read",
         lambda env: write(env.work / "w.pth", b"\x80\x04cos\nsystem\n(S'echo pwned'\ntR.")),
]

IMAGE_CASES = [
    Case("traversal-dotdot", run_in("bad"), "../secret/outside.png",
         labels("bad", {"../secret/outside.png": "quail", "a.png": "quail"})),
    Case("traversal-absolute", run_in("bad"), "points outside",
         lambda env: labels("bad", {str(env.work / "secret" / "outside.png"): 85})(env)),
    Case("traversal-symlink", run_in("bad"), "leads outside",
         lambda env: (labels("bad", {"link.png": 85})(env),
                      (env.work / "bad" / "link.png").symlink_to(env.work / "secret" / "outside.png"))),
    Case("labels-list", run_in("imgs"), "JSON object", labels("imgs", '["a.png", "b.png"]')),
    Case("labels-bad-json", run_in("imgs"), "not valid JSON", labels("imgs", '{"a.png": 85,')),
    Case("labels-not-utf8", run_in("imgs"), "not valid JSON", labels("imgs", b'{"caf\xe9.png": 85}')),
    Case("labels-folder", run_in("imgs"), "labels.json", lambda env: (
        (env.work / "imgs" / "labels.json").unlink(), (env.work / "imgs" / "labels.json").mkdir())),
    Case("labels-empty", run_in("imgs"), "lists no images", labels("imgs", {})),
    Case("entry-boxes-without-label", run_in("imgs"), "no 'label'",
         labels("imgs", {"a.png": {"boxes": [[0, 0, 10, 10]]}})),
    Case("entry-unknown-field", run_in("imgs"), "unknown field", labels("imgs", {"a.png": {"lable": 85}})),
    Case("box-not-numeric", run_in("imgs"), "a.png", labels("imgs", {"a.png": {"label": 85, "boxes": [["a", 0, 5, 5]]}})),
    Case("box-three-values", run_in("imgs"), "[0, 0, 5]", labels("imgs", {"a.png": {"label": 85, "boxes": [[0, 0, 5]]}})),
    Case("box-nan", run_in("imgs"), "finite", labels("imgs", '{"a.png": {"label": 85, "boxes": [[0, 0, NaN, 5]]}}')),
    Case("boxes-flat-list", run_in("imgs"), "list of lists", labels("imgs", {"a.png": {"label": 85, "boxes": [0, 0, 5, 5]}})),
    Case("box-inverted", run_in("imgs"), "inverted", labels("imgs", {"a.png": {"label": 85, "boxes": [[50, 50, 10, 10]]}})),
    Case("box-outside-image", run_in("imgs"), "outside the 224×224 image",
         labels("imgs", {"a.png": {"label": 85, "boxes": [[100, 100, 400, 300]]}})),
    Case("duplicate-key", run_in("imgs"), "twice", labels("imgs", '{"a.png": 85, "a.png": 76}')),
    Case("label-unknown-class", run_in("imgs"), "a.png: unknown class 'quial'", labels("imgs", {"a.png": "quial"})),
    Case("label-index-1000", run_in("imgs"), "a.png: class index 1000", labels("imgs", {"a.png": 1000})),
    Case("label-boolean", run_in("imgs"), "label True", labels("imgs", {"a.png": True})),
    Case("label-null", run_in("imgs"), "label None", labels("imgs", {"a.png": None})),
    Case("csv-row-without-label", run_in("imgs"), "labels.csv, line 3", csv_labels("file,label\na.png,quail\nb.png\n")),
    Case("csv-no-header", run_in("imgs"), "header", csv_labels("a.png,quail\n")),
    Case("csv-duplicate", run_in("imgs"), "twice", csv_labels("file,label\na.png,quail\na.png,hay\n")),
    Case("csv-traversal", run_in("imgs"), "points outside", csv_labels("file,label\n../secret/outside.png,quail\n")),
    Case("listed-file-missing", run_in("imgs"), "missing.png", labels("imgs", {"missing.png": 85})),
    Case("not-an-image", run_in("imgs"), "cannot be read as an image",
         lambda env: (write(env.work / "imgs" / "c.png", "hello"), labels("imgs", {"c.png": 85})(env))),
    Case("not-an-image-suffix", run_in("imgs"), "not an image file",
         lambda env: (write(env.work / "imgs" / "c.txt", "hello"), labels("imgs", {"c.txt": 85})(env))),
    Case("decompression-bomb", run_in("imgs"), "too large",
         lambda env: (write(env.work / "imgs" / "big.png", png_header(14000, 14000)), labels("imgs", {"big.png": 85})(env))),
    Case("images-is-a-file", run_in("imgs/a.png"), "not a folder"),
    Case("images-missing", run_in("nowhere"), "nowhere"),
]

STORED_CASES = [
    Case("report-corrupt-metrics", lambda env: ["report", "--no-pdf"], "metrics.json",
         lambda env: write(env.work / "results/saliency/metrics.json", '{"models": ')),
    Case("expected-out-is-a-file", lambda env: ["expected", "--out", "f", "--allow-partial"], "is a file",
         lambda env: write(env.work / "f", "x")),
    Case("grade-expected-figure-truncated", grade_args, "damaged", damage_figure("exp")),
    Case("grade-expected-metrics-missing", grade_args, "metrics.json",
         lambda env: (env.work / "exp/results/saliency/metrics.json").unlink()),
    Case("grade-expected-metrics-truncated", grade_args, "metrics.json",
         lambda env: write(env.work / "exp/results/saliency/metrics.json", '{"models": {')),
    Case("grade-expected-missing", lambda env: ["grade", "--expected", "none", "--html", ""], "none"),
    Case("read-only-results", lambda env: env.run("--force", "saliency"), "read-only",
         raise_oserror(errno.EROFS, "staging")),
    Case("permission-denied", lambda env: env.run("--force", "saliency"), "Permission denied",
         raise_oserror(errno.EACCES, "staging")),
    Case("disk-full", lambda env: env.run("--force", "saliency"), "No space left", raise_oserror(errno.ENOSPC, "json")),
]

CASES = CONFIG_CASES + DATA_CASES + IMAGE_CASES + STORED_CASES


# -------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, course_images, data_dir) -> tuple[Path, Path]:
    """A finished build (results/, figures/, an expected set exp/) made by the command line in a folder that
    also holds imgs/ (two course images as PNGs, labels.json with boxes) and secret/outside.png."""
    from netviz.config import resolve_data_dir
    from netviz.weights import resolve_weights

    root = tmp_path_factory.mktemp("prepared")
    entries = {}
    for index, name in ((0, "a.png"), (1, "b.png")):
        pixels = (course_images.images[index].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        write(root / "imgs" / name, b"")
        Image.fromarray(pixels).save(root / "imgs" / name)
        entries[name] = {"label": int(course_images.labels[index]), "boxes": [list(b) for b in course_images.boxes[index]]}
    write(root / "imgs" / "labels.json", json.dumps(entries))
    write(root / "secret" / "outside.png", b"")
    Image.new("RGB", (64, 64), (200, 0, 0)).save(root / "secret" / "outside.png")
    env = Env(root, data_dir, resolve_weights("squeezenet1_1", {}, resolve_data_dir({"data_dir": str(data_dir)})).path, pytest.MonkeyPatch())
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert cli.main(env.run()) == 0
        assert cli.main(["expected", "--out", "exp", "--allow-partial", "--variants", "none"]) == 0
    return root, env.weights


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under results/ and figures/ (the lock file's content is the last holder's pid)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in ("results", "figures") for p in sorted((root / folder).rglob("*"))
            if p.is_file() and p.name != ".lock"}


@pytest.fixture
def env(prepared, tmp_path, data_dir, monkeypatch) -> Env:
    root, weights = prepared
    work = tmp_path / "work"
    shutil.copytree(root, work, symlinks=True)
    monkeypatch.chdir(work)
    return Env(work, data_dir, weights, monkeypatch)


# ------------------------------------------------------------------------------------------------------ tests


def test_catalogue_is_large_enough():
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line(case: Case, env: Env, capsys):
    if case.setup:
        case.setup(env)
    before = tree_hashes(env.work)  # after the setup, which damages some stored files on purpose
    status = cli.main(case.argv(env))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert status == case.status, err
    assert len(lines) == 1 and lines[0].startswith("netviz: error: "), err
    assert case.says in lines[0], lines[0]
    assert tree_hashes(env.work) == before, "results/ or figures/ changed"


def test_nothing_outside_the_folder_is_read(env: Env, monkeypatch):
    """The traversal is refused before any file is opened: the outside image is never read."""
    labels("bad", {"../secret/outside.png": 85})(env)
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda path, *a, **k: (opened.append(str(path)), real_open(path, *a, **k))[1])
    assert cli.main(env.run(images="bad")) == 2
    assert not any("outside" in path for path in opened)


# Stored files that are derived: damaged, they are rebuilt (exit 0) and the build ends as it was.


def test_damaged_provenance_is_rewritten(env: Env, capsys):
    before = tree_hashes(env.work)
    write(env.work / "results/provenance.json", '{"git": ')
    assert cli.main(env.run()) == 0, capsys.readouterr().err
    assert "provenance.json was damaged" in capsys.readouterr().out
    assert tree_hashes(env.work) == before  # the same provenance, byte for byte; nothing re-ran


def test_damaged_metrics_are_rebuilt(env: Env, capsys):
    before = tree_hashes(env.work)
    write(env.work / "results/saliency/metrics.json", '{"models": ')
    assert cli.main(env.run()) == 0, capsys.readouterr().err
    assert "saliency: re-running: results/saliency/metrics.json changed" in capsys.readouterr().out
    after = tree_hashes(env.work)
    manifests = {k for k in before if k.endswith("manifest.json") or k.endswith("provenance.json")}  # run times
    assert {k: v for k, v in after.items() if k not in manifests} == {k: v for k, v in before.items() if k not in manifests}


# Silent wrong results, now right.


def test_non_finite_numbers_are_stored_as_null(tmp_path):
    store.write_json(tmp_path / "m.json", {"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": torch.tensor(float("-inf"))})
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON")) == {"a": None, "b": [None, 1.5], "c": None}


def _folder_with(tmp_path: Path, image: Image.Image, name: str = "x.png", **save) -> torch.Tensor:
    image.save(tmp_path / name, **save)
    write(tmp_path / "labels.json", json.dumps({name: 85}))
    return data.load_image_folder(tmp_path).images[0]


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 224).round().astype(np.uint16), (224, 1))
    loaded = _folder_with(tmp_path, Image.fromarray(ramp))
    expected = torch.from_numpy(ramp / 65535.0).float()
    assert loaded.shape == (3, 224, 224)
    assert float((loaded[0] - expected).abs().max()) <= 1 / 255 + 1e-6
    assert float(loaded.mean()) == pytest.approx(0.5, abs=0.01)  # not a white image


def test_exif_orientation_is_applied(tmp_path):
    upright = np.zeros((300, 224, 3), np.uint8)
    upright[:100] = (255, 0, 0)  # red band at the top of the photo as seen
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # the camera stored it lying down
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    loaded = _folder_with(tmp_path, stored, "photo.jpg", exif=exif, quality=95)
    assert float(loaded[0, :20].mean()) > 0.9 and float(loaded[0, -20:].mean()) < 0.1  # red on top, as displayed


def test_transparency_is_composed_over_white(tmp_path):
    rgba = np.zeros((224, 224, 4), np.uint8)  # fully transparent black
    loaded = _folder_with(tmp_path, Image.fromarray(rgba, mode="RGBA"))
    assert float(loaded.min()) == 1.0


def test_report_when_nothing_was_fooled(tmp_path, monkeypatch, capsys):
    """The report of a valid run in which the lab's method fooled no image (its survival rates are undefined)
    renders: the stored expected set's adversarial results, changed to that outcome."""
    repo = Path(__file__).resolve().parents[1]
    shutil.copytree(repo / "expected" / "default", tmp_path / "build")
    root = tmp_path / "build"
    path = root / "results/adversarial/metrics.json"
    metrics = json.loads(path.read_text())
    for fooling in metrics["fooling"].values():
        for row in fooling["per_image"]:
            row.update(success_float=False, success_png=False, success_jpeg=False)
        summary = fooling["summary"]
        summary.update(success_float=0.0, success_png=0.0, success_jpeg=0.0, survive_png=None, survive_jpeg=None)
        summary["transfer_target"] = {model: 0.0 for model in summary["transfer_target"]}
    path.write_text(json.dumps(metrics))
    provenance = json.loads((root / "results/provenance.json").read_text())
    for entry in provenance["weights"].values():
        entry.setdefault("source", "embedded")  # sets made before weights carried their source
    (root / "results/provenance.json").write_text(json.dumps(provenance))
    monkeypatch.chdir(root)
    assert cli.main(["report", "--no-pdf"]) == 0, capsys.readouterr().err
    assert "no image reached the target" in (root / "report/report.html").read_text()


def test_a_bug_shows_its_traceback_and_says_so(env: Env, monkeypatch, capsys):
    from netviz.experiments import runner

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(runner, "data_fingerprint", broken)
    assert cli.main(env.run()) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: a bug" in err
    assert err.strip().splitlines()[-1].startswith("netviz: internal error:") and "bug in netviz" in err


def test_grading_a_build_with_a_damaged_figure_fails_that_figure(env: Env, capsys):
    damage_figure(".")(env)
    assert cli.main(grade_args(env)) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "unreadable in the build" in captured.out
