"""A reference student-training pipeline in the shape of the official SRe2L / CDA `train_FKD.py`
(papers.md sections 6.3 and 6.4): the distilled set is a PNG ImageFolder on disk, decoded with PIL
by DataLoader workers; each image gets its stored crop (`resized_crop` at the stored coordinates)
and flip, then ToTensor and Normalize; the soft labels and mix parameters of a batch come from a
per-batch file `epoch_{e}/batch_{b}.tar` written with torch.save, holding
[coords, flip_status, mix_index, mix_lam, mix_bbox, logits]; CutMix is re-applied in the loop.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets, transforms


def write_fkd_files(plans_per_epoch, logits_per_epoch, folder: Path) -> int:
    """One file per batch, in the official list layout. Returns the bytes written."""
    total = 0
    for e, (plans, logits) in enumerate(zip(plans_per_epoch, logits_per_epoch)):
        (folder / f"epoch_{e}").mkdir(parents=True, exist_ok=True)
        for b, (plan, z) in enumerate(zip(plans, logits)):
            mix = plan.mix
            blob = [torch.as_tensor(plan.views.boxes), torch.as_tensor(plan.views.flips),
                    torch.as_tensor(mix.perm if mix else list(range(len(plan.indices)))),
                    float(mix.lam if mix else 1.0), list(mix.box) if mix and mix.box else None, z.half()]
            path = folder / f"epoch_{e}" / f"batch_{b}.tar"
            torch.save(blob, path)
            total += path.stat().st_size
    return total


class FKDImageFolder(Dataset):
    """Items are (epoch, batch, position, image index); the batch's file is read once per worker."""

    def __init__(self, root: Path, fkd: Path, size: int, mean, std, gray: bool):
        self.folder = datasets.ImageFolder(str(root))
        self.fkd, self.size, self.gray = fkd, size, gray
        self.post = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
        self.key, self.blob = None, None

    def __len__(self):
        return len(self.folder)

    def __getitem__(self, item):
        epoch, batch, pos, index = item
        if self.key != (epoch, batch):
            self.key = (epoch, batch)
            self.blob = torch.load(self.fkd / f"epoch_{epoch}" / f"batch_{batch}.tar", weights_only=True)
        coords, flips = self.blob[0], self.blob[1]
        img = self.folder.loader(self.folder.samples[index][0])
        img = img.convert("L") if self.gray else img
        top, left, h, w = (coords[pos] * self.size).tolist()
        img = TF.resized_crop(img, round(top), round(left), round(h), round(w), [self.size, self.size],
                              antialias=True)
        if bool(flips[pos]):
            img = TF.hflip(img)
        return self.post(img), (epoch, batch, self.blob if pos == 0 else None)


def collate(items):
    images = torch.stack([x for x, _ in items])
    epoch, batch, blob = items[0][1]
    return images, epoch, blob


def train_reference(student, root: Path, fkd: Path, plans_per_epoch, info, lr: float, temperature: float,
                    workers: int, device: str) -> int:
    """Train `student` over every stored epoch; returns the number of images processed."""
    dataset = FKDImageFolder(root, fkd, info.image_size, info.mean, info.std, info.channels == 1)
    order = [[(e, b, pos, int(i)) for pos, i in enumerate(plan.indices)]
             for e, plans in enumerate(plans_per_epoch) for b, plan in enumerate(plans)]
    loader = DataLoader(dataset, batch_sampler=order, num_workers=workers, collate_fn=collate,
                        pin_memory=device.startswith("cuda"))
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.01)
    epochs = len(plans_per_epoch)
    student.train()
    seen = 0
    for images, epoch, blob in loader:
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        _, _, mix_index, lam, bbox, logits = blob
        x = images.to(device, non_blocking=True)
        if bbox is not None:  # CutMix with the stored partner and box
            y1, y2, x1, x2 = bbox
            x[:, :, y1:y2, x1:x2] = x[mix_index.to(device)][:, :, y1:y2, x1:x2]
        out = student(x)
        loss = F.kl_div(F.log_softmax(out / temperature, dim=1),
                        F.softmax(logits.to(device).float() / temperature, dim=1), reduction="batchmean")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(x)
    return seen
