"""Shared fixtures: a few hundred real Fashion-MNIST images and a small teacher trained on them.

`pytest --device cuda` (or cuda:N) runs the device-aware tests (those taking the `device` fixture) on
that GPU; the default is the CPU, which is all CI has.
"""
from pathlib import Path

import pytest
import torch

from cda.config import DataConfig, SqueezeConfig
from cda.data import load_split

torch.set_num_threads(2)

TINY = DataConfig(train_per_class=40, test_per_class=20)


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu",
                     help="device for the device-aware tests: cpu (default), cuda or cuda:N")
    parser.addoption("--all-models", action="store_true",
                     help="also run the heavy models of the model-registry tests at every channel count")


def pytest_configure(config):
    device = config.getoption("--device")
    if not (device == "cpu" or device.startswith("cuda")):
        raise pytest.UsageError(f"--device {device}: use cpu, cuda or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise pytest.UsageError(f"--device {device} was asked for, but PyTorch sees no CUDA device here")


@pytest.fixture(scope="session")
def device(request) -> str:
    """The device that the device-aware tests run on (`pytest --device cuda`)."""
    return request.config.getoption("--device")


@pytest.fixture(scope="session")
def tiny_data():
    return load_split(TINY, train=True), load_split(TINY, train=False)


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory):
    """A convnet3_w16 teacher trained on 400 real Fashion-MNIST images, saved as a checkpoint."""
    from cda.squeeze import squeeze

    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    model, meta = squeeze(TINY, SqueezeConfig(arch="convnet3_w16", epochs=4, batch_size=32, lr=0.05),
                          out_path=path, progress=False)
    return model, meta, path


def exit_after_checkpoints(child: str, args: list[str], progress_path: Path, n: int = 1, part: str = "") -> dict:
    """Run `python -c child *args` from the project root until it writes its `n`-th progress checkpoint
    (counting only paths holding `part`), where it exits hard from inside (cda.checkpoint's test hook, as a
    kill at that point), and return the state at `progress_path`."""
    import os
    import subprocess
    import sys

    from cda.checkpoint import EXIT_AFTER_CHECKPOINTS, EXIT_CODE

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), EXIT_AFTER_CHECKPOINTS: f"{n}:{part}" if part else str(n)}
    proc = subprocess.run([sys.executable, "-c", child, *args], cwd=root, capture_output=True, env=env, timeout=300)
    assert proc.returncode == EXIT_CODE, (f"the child ended with {proc.returncode}, not at its checkpoint: "
                                          f"{proc.stderr.decode()[-2000:]}")
    assert b"finished" not in proc.stdout
    return torch.load(progress_path, weights_only=True)
