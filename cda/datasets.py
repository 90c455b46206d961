"""The known datasets' shapes and statistics (DatasetInfo): what a config, a plan or a loader needs
to know about a dataset without its data. Imports nothing of cda, and torch only when a tensor is made."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    image_size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    in_memory: bool
    classes: tuple[str, ...] = ()

    def mean_std(self, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        import torch  # here, so that the table (and cda.config, which reads it) loads without torch

        shape = (1, self.channels, 1, 1)
        mean = torch.tensor(self.mean, device=device, dtype=torch.float32).view(shape)
        std = torch.tensor(self.std, device=device, dtype=torch.float32).view(shape)
        return mean, std

    def normalize(self, images_u8: torch.Tensor) -> torch.Tensor:
        """uint8 [N, C, H, W] -> normalized float32."""
        mean, std = self.mean_std(images_u8.device)
        return (images_u8.float() / 255.0 - mean) / std

    def to_uint8(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized float -> uint8, rounding to the nearest level (PNG-exact)."""
        mean, std = self.mean_std(x.device)
        return ((x.float() * std + mean).clamp(0, 1) * 255).round().byte()

    def pixel_bounds(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalized images of pixel values 0 and 1, per channel."""
        mean, std = self.mean_std(device)
        return -mean / std, (1 - mean) / std


FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

DATASETS: dict[str, DatasetInfo] = {
    "fashion_mnist": DatasetInfo("fashion_mnist", 10, 28, 1, (0.2861,), (0.3530,), True, FASHION_CLASSES),
    "digits": DatasetInfo("digits", 10, 8, 1, (0.3080,), (0.3740,), True, tuple(str(i) for i in range(10))),
    "cifar10": DatasetInfo("cifar10", 10, 32, 3, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), True),
    "cifar100": DatasetInfo("cifar100", 100, 32, 3, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), True),
    "tiny_imagenet": DatasetInfo("tiny_imagenet", 200, 64, 3, (0.4802, 0.4481, 0.3975),
                                 (0.2302, 0.2265, 0.2262), False),
    "imagenet1k": DatasetInfo("imagenet1k", 1000, 224, 3, IMAGENET_MEAN, IMAGENET_STD, False),
    # The ImageNet-21K-P teacher of CDA was trained without normalization (papers.md 5.1).
    "imagenet21k": DatasetInfo("imagenet21k", 10450, 224, 3, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False),
    # any tree: its classes and (unless DataConfig.image_size is set) its image size are read from it
    "imagefolder": DatasetInfo("imagefolder", 0, 224, 3, IMAGENET_MEAN, IMAGENET_STD, False),
}

def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]
