"""One model factory by name, and the list of names it builds.

`list_models()` enumerates cda's canonical architectures (every name builds); `create_model(name, ...)`
builds them and a few open-ended families that are not enumerated member by member:

- `convnet{D}[_w{W}][_{bn|in|none}]`: the distillation ConvNet (D blocks of conv3x3-norm-ReLU-avgpool,
  width W, default 64 and BatchNorm; recovery needs BatchNorm). Listed: the members cda uses.
- `vit_p{P}_d{D}_w{W}`: a small ViT (timm's VisionTransformer) with patch P, depth D and width W, for
  small images, where a 16-pixel patch would leave one token (e.g. `vit_p4_d4_w128` on 28x28).
- `mixer_p{P}_d{D}_w{W}`, `resmlp_p{P}_d{D}_w{W}`: small MLP-Mixer and ResMLP (timm's MlpMixer with
  Mixer-S/16's or ResMLP-24's blocks) for the same reason: CUDD's timm MLP students at small sizes.
- any torchvision classification model (`torchvision.models.list_models()`: `resnet18`, `mobilenet_v2`,
  `densenet121`, ...); append `_modified` for the small-image variant the papers use on small inputs
  (3x3 stride-1 stem, no max-pool). Listed: the papers' students.
- `timm/<name>` for any timm model (`timm.list_models()`). Listed: CUDD's timm students.

Every model takes any number of input channels.
"""
from __future__ import annotations

import difflib
import fnmatch
import re
import warnings
from typing import Callable

import torch
from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_REGISTERED_TEACHERS: set[str] = set()

# The canonical members of the parametrized families, each with whether it has BatchNorm (so that
# it can be a recovery teacher: recovery matches BatchNorm statistics).
_CANONICAL: dict[str, bool] = {
    # ConvNets: the dataset-distillation standard (3 blocks for <= 32 px, 4 for 64 px), the narrow
    # ones of the smoke preset and the tests, and DC's instance-norm and no-norm variants.
    "convnet3": True, "convnet3_w8": True, "convnet3_w16": True, "convnet4": True,
    "convnet3_in": False, "convnet3_w8_in": False, "convnet3_none": False,
    "vit_p4_d4_w128": False,  # the small ViT of the cross-architecture studies at 28 px
    "mixer_p4_d4_w128": False, "resmlp_p4_d4_w128": False,  # the MLP students at small sizes
    # torchvision: the papers' students (CDA's cross-architecture table; ResNet-18 is the teacher),
    # and their small-input variants.
    **{f"{base}{suffix}": True for base in ("resnet18", "resnet50", "resnet101", "mobilenet_v2", "densenet121",
                                            "efficientnet_b0") for suffix in ("", "_modified")},
    # timm: the transformer and MLP students of CUDD's code.
    "timm/deit_tiny_patch16_224": False, "timm/vit_tiny_patch16_224": False, "timm/mixer_s16_224": False,
    "timm/resmlp_24_224": False,
}

PATTERNS = ("convnet{D}[_w{W}][_{bn|in|none}]", "vit_p{P}_d{D}_w{W}", "{mixer|resmlp}_p{P}_d{D}_w{W}",
            "<torchvision classification model>[_modified]", "timm/<timm model>")


class UnknownModelError(KeyError):
    def __str__(self):
        return self.args[0]


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights were asked for and could not be had."""


def register_model(fn: Callable[..., nn.Module] | None = None, *, teacher: bool = False):
    """Register a model builder `fn(num_classes, in_channels, image_size) -> nn.Module` under its name
    (`@register_model`, or `@register_model(teacher=True)` for one with BatchNorm)."""
    def add(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if f.__name__ in _REGISTRY or f.__name__ in _CANONICAL:
            warnings.warn(f"register_model: {f.__name__!r} was already a model name; the new builder replaces it",
                          stacklevel=2)
        _REGISTRY[f.__name__] = f
        (_REGISTERED_TEACHERS.add if teacher else _REGISTERED_TEACHERS.discard)(f.__name__)
        return f
    return add(fn) if fn is not None else add


def list_models(pattern: str = "*", teachers: bool = False) -> list[str]:
    """The names cda enumerates, sorted; every one builds with `create_model`.

    `pattern` filters them as a shell-style wildcard (`"resnet*"`, `"*_modified"`, `"timm/*"`).
    `teachers=True` keeps those with BatchNorm, which recovery can use as teachers.
    The open-ended families (`PATTERNS`) build more names than are listed: any ConvNet depth and
    width, any small-ViT shape, every torchvision classification model and every timm model.
    """
    names = {n: bn for n, bn in _CANONICAL.items()}
    names.update({n: n in _REGISTERED_TEACHERS for n in _REGISTRY})
    return sorted(n for n, bn in names.items() if fnmatch.fnmatchcase(n, pattern) and (bn or not teachers))


def _unknown(name: str, why: str = "", candidates: list[str] | None = None) -> UnknownModelError:
    from torchvision import models

    if candidates is None:
        candidates = list(dict.fromkeys(list_models() + models.list_models(module=models)))
    close = difflib.get_close_matches(name, candidates, n=3)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    return UnknownModelError(f"unknown architecture {name!r}{why}.{hint} cda lists: {', '.join(list_models())}; "
                             f"it also builds {', '.join(PATTERNS)}.")


_CONVNET = re.compile(r"^convnet(\d+)(?:_w(\d+))?(?:_(bn|in|none))?$")
_VIT = re.compile(r"^vit_p(\d+)_d(\d+)_w(\d+)$")
_MLP = re.compile(r"^(mixer|resmlp)_p(\d+)_d(\d+)_w(\d+)$")


def create_model(name: str, num_classes: int, in_channels: int = 3, image_size: int = 224,
                 pretrained: str | None = None) -> nn.Module:
    """Build the model `name` for `num_classes` outputs and `in_channels` input channels."""
    if num_classes <= 0:
        raise ValueError(f"num_classes={num_classes}: must be positive")
    if name in _REGISTRY:
        return _REGISTRY[name](num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    match = _CONVNET.match(name)
    if match:
        depth, width, norm = int(match[1]), int(match[2] or 64), match[3] or "bn"
        return ConvNet(num_classes, in_channels, image_size, depth=depth, width=width, norm=norm)
    match = _VIT.match(name)
    if match:
        return _small_vit(num_classes, in_channels, image_size, *(int(g) for g in match.groups()))
    match = _MLP.match(name)
    if match:
        return _small_mlp(match[1], num_classes, in_channels, image_size, *(int(g) for g in match.groups()[1:]))
    if name.startswith("timm/"):
        return _timm_model(name[5:], num_classes, in_channels, image_size, pretrained)
    return _torchvision_model(name, num_classes, in_channels, pretrained)


class ConvNet(nn.Module):
    """The standard dataset-distillation ConvNet, with BatchNorm by default."""

    def __init__(self, num_classes: int, in_channels: int = 3, image_size: int = 32, depth: int = 3,
                 width: int = 64, norm: str = "bn"):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"ConvNet depth={depth}, width={width}: both must be positive")
        if image_size >> depth < 1:
            raise ValueError(f"ConvNet of depth {depth} halves a {image_size}px image to nothing; use less depth")
        layers, channels = [], in_channels
        for _ in range(depth):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=norm == "none"), _norm(norm, width),
                       nn.ReLU(inplace=True), nn.AvgPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * (image_size >> depth) ** 2, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def _norm(kind: str, width: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(width)
    if kind == "in":
        return nn.GroupNorm(width, width, affine=True)  # instance norm with affine, as in DC's ConvNet
    return nn.Identity()


def _torchvision_model(name: str, num_classes: int, in_channels: int, pretrained: str | None) -> nn.Module:
    from torchvision import models

    small = name.endswith("_modified")
    base = name[: -len("_modified")] if small else name
    if base not in models.list_models(module=models):
        raise _unknown(name)
    if pretrained:
        try:
            model = models.get_model(base, weights=pretrained)
        except Exception as err:
            raise PretrainedWeightsError(
                f"could not load torchvision weights {pretrained!r} for {base}: {err}. Weights are downloaded "
                f"from the internet on first use; without internet, place the file in $TORCH_HOME/hub/checkpoints "
                f"(torch.hub.get_dir()) or squeeze your own teacher (SqueezeConfig.pretrained=None).") from err
        if num_classes != _out_features(model):
            raise ValueError(f"pretrained {base} has {_out_features(model)} classes, not {num_classes}")
    else:
        model = models.get_model(base, weights=None, num_classes=num_classes)
    if small:
        _make_small_input(model, name)
    if in_channels != 3:
        _set_in_channels(model, in_channels)
    return model


def _out_features(model: nn.Module) -> int:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features


def _first_conv(model: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                return parent, child_name, child
    raise ValueError(f"{type(model).__name__} has no Conv2d layer")


def _make_small_input(model: nn.Module, name: str) -> None:
    """3x3 stride-1 stem and no max-pool, for 32x32 and smaller inputs."""
    parent, attr, conv = _first_conv(model)
    setattr(parent, attr, nn.Conv2d(conv.in_channels, conv.out_channels, 3, 1, 1, bias=conv.bias is not None))
    pools = [(p, n) for p in model.modules() for n, c in p.named_children() if isinstance(c, nn.MaxPool2d)]
    if not hasattr(model, "maxpool") and not pools and "mobilenet" not in name and "efficientnet" not in name:
        raise UnknownModelError(f"{name}: no small-input variant is defined for this family")
    if pools:  # the stem's max-pool only (ResNet `maxpool`, DenseNet `pool0`)
        p, n = pools[0]
        setattr(p, n, nn.Identity())


def _set_in_channels(model: nn.Module, in_channels: int) -> None:
    parent, attr, conv = _first_conv(model)
    setattr(parent, attr, nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                    conv.padding, bias=conv.bias is not None))


def _timm_model(name: str, num_classes: int, in_channels: int, image_size: int, pretrained) -> nn.Module:
    try:
        import timm
    except ImportError as err:
        raise UnknownModelError(f"timm/{name}: timm is not installed (pip install timm)") from err
    if not timm.list_models(name):
        raise _unknown(f"timm/{name}", " (not in timm.list_models())", [f"timm/{n}" for n in timm.list_models()])
    kwargs = dict(num_classes=num_classes, in_chans=in_channels, pretrained=bool(pretrained))
    if any(k in name for k in ("vit", "deit", "mixer", "resmlp", "swin")):
        kwargs["img_size"] = image_size
    try:
        model = timm.create_model(name, **kwargs)
    except Exception as err:
        if pretrained:
            raise PretrainedWeightsError(f"could not load timm weights for {name}: {err}") from err
        raise
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    if patch is not None and image_size % patch[0]:  # timm would silently drop the remainder
        raise ValueError(f"timm/{name} cuts images into {patch[0]}-px patches, but {image_size} px is not a "
                         f"multiple of {patch[0]}: its last {image_size % patch[0]} rows and columns would never be "
                         f"seen. Use images of a multiple of {patch[0]} px (32, 224), or a small ViT whose patch "
                         f"divides {image_size} (e.g. vit_p4_d12_w192: DeiT-Tiny's depth and width, 4-px patches)")
    return model


def _small_vit(num_classes: int, in_channels: int, image_size: int, patch: int, depth: int,
               width: int) -> nn.Module:
    try:
        from timm.models.vision_transformer import VisionTransformer
    except ImportError as err:
        raise UnknownModelError(f"vit_p{patch}_d{depth}_w{width}: timm is not installed (pip install timm)") from err
    if image_size % patch:
        raise ValueError(f"vit_p{patch}: the patch size must divide the image size {image_size}")
    heads = max(1, width // 32)  # 32-dimensional heads, as in DeiT-Tiny (192 wide, 3 heads of 64) scaled down
    return VisionTransformer(img_size=image_size, patch_size=patch, in_chans=in_channels, num_classes=num_classes,
                             embed_dim=width, depth=depth, num_heads=heads)


def _small_mlp(kind: str, num_classes: int, in_channels: int, image_size: int, patch: int, depth: int,
               width: int) -> nn.Module:
    """MLP-Mixer (Mixer-S/16's blocks) or ResMLP (ResMLP-24's: affine norms, layer scale 1e-5) at any
    patch, depth and width."""
    try:
        from functools import partial

        from timm.models.mlp_mixer import Affine, MlpMixer, ResBlock
    except ImportError as err:
        raise UnknownModelError(f"{kind}_p{patch}_d{depth}_w{width}: timm is not installed (pip install timm)") from err
    if image_size % patch:
        raise ValueError(f"{kind}_p{patch}: the patch size must divide the image size {image_size}")
    blocks = dict(mlp_ratio=4, block_layer=partial(ResBlock, init_values=1e-5), norm_layer=Affine) \
        if kind == "resmlp" else {}
    return MlpMixer(num_classes=num_classes, img_size=image_size, in_chans=in_channels, patch_size=patch,
                    num_blocks=depth, embed_dim=width, **blocks)


def bn_layers(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
