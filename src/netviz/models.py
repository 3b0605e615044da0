"""Classifiers by name, wrapped to take pixel-space images.

Every model is returned as a :class:`Classifier`: input N×3×H×W float in [0, 1] (RGB pixel space), output
N×1000 ImageNet logits. The wrapper owns the model's input normalisation, so methods never normalise.
Models are in eval mode with frozen parameters (``requires_grad=False``); gradients still flow to the input.

Where the weights come from is :mod:`netviz.weights`; batch-norm folding is :mod:`netviz.batchnorm`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from netviz.batchnorm import fold_batchnorm
from netviz.budget import chunked
from netviz.config import NO_DATA_DIR, DataDir
from netviz.errors import NetvizError
from netviz.store import hash_file
from netviz.weights import check_model_name, read_state_dict, resolve_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The layer whose activations Grad-CAM uses: the output of each model's last convolutional block.
TARGET_LAYERS = {"squeezenet1_1": "features", "vgg16": "features.29", "efficientnet_lite0": "bn2"}

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
    state = read_state_dict(name, path)
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
