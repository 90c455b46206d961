"""Devices: a clear error where CUDA is asked for and missing, and the main steps on the device that
`pytest --device` names (cpu by default; `pytest --device cuda tests/test_device.py` on a GPU machine)."""
import copy
from dataclasses import replace

import pytest
import torch

from cda.cli import main
from cda.config import AugConfig, EvalConfig, RecoverConfig
from cda.data import dataset_info
from cda.recover import real_subset, recover
from cda.student import train_student
from cda.training import resolve_device

INFO = dataset_info("fashion_mnist")


def test_cuda_without_a_device_is_a_clear_error(monkeypatch, capsys):
    """What a machine without CUDA answers, checked on every machine (CUDA is hidden here)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="PyTorch sees no CUDA device here .*use device='cpu'"):
        resolve_device("cuda")
    assert main(["run", "--preset", "smoke", "--device", "cuda:0"]) == 1
    assert "no CUDA device" in capsys.readouterr().err


def test_device_names_resolve_on_this_machine():
    with pytest.raises(ValueError, match="use 'cpu', 'cuda' or 'cuda:N'"):
        resolve_device("gpu")
    assert resolve_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda:0") == torch.device("cuda:0")
        assert torch.ones(1, device=resolve_device("cuda")).device.type == "cuda"
    else:
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device("cuda:0")


def test_student_trains_on_the_device(device, tiny_teacher, tiny_data):
    """A student trained on `device` (fp32: amp off) lives there and, on a GPU, predicts like one trained
    on the CPU."""
    cfg = EvalConfig(arch="convnet3_w8", amp=False, aug=AugConfig(epochs=4, batch_size=16, crop_scale=(0.5, 1.0)))
    subset = real_subset(tiny_data[0], 5)
    teacher = copy.deepcopy(tiny_teacher[0])  # training moves the teacher to the device; keep the shared one
    student = train_student(subset, INFO, cfg, teacher, device=device, progress=False)
    assert {p.device.type for p in student.parameters()} == {torch.device(device).type}
    if device == "cpu":
        return  # the CPU is the reference
    reference = train_student(subset, INFO, cfg, tiny_teacher[0], device="cpu", progress=False)
    x = INFO.normalize(tiny_data[1].images)
    with torch.no_grad():
        agree = (student(x.to(device)).argmax(1).cpu() == reference(x).argmax(1)).float().mean().item()
    assert agree > 0.9, agree


def test_recovery_runs_on_the_device(device, tiny_teacher):
    cfg = RecoverConfig(ipc=1, iterations=20, lr=0.1, amp=False)
    distilled = recover(copy.deepcopy(tiny_teacher[0]), INFO, cfg, device=device, progress=False)
    assert distilled.meta["device"].startswith(device.split(":")[0])
    assert distilled.images.dtype == torch.uint8 and distilled.images.device.type == "cpu"
    if device == "cpu":
        return  # the CPU is the reference
    reference = recover(tiny_teacher[0], INFO, cfg, device="cpu", progress=False)
    other_seed = recover(tiny_teacher[0], INFO, replace(cfg, seed=1), device="cpu", progress=False)

    def gap(a, b):
        return (a.images.float() - b.images.float()).abs().mean().item()

    # The same images up to float rounding (TF32 convolutions, Adam steps on near-zero gradients):
    # much closer to the CPU's than another seed's images are.
    assert gap(distilled, reference) < 0.2 * gap(other_seed, reference), (gap(distilled, reference),
                                                                           gap(other_seed, reference))
