"""Shared fixtures: a few hundred real Fashion-MNIST images and a small teacher trained on them."""
import pytest
import torch

from cda.config import DataConfig, SqueezeConfig
from cda.data import load_split

torch.set_num_threads(2)

TINY = DataConfig(train_per_class=40, test_per_class=20)


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
