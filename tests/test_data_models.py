import gzip
from fnmatch import fnmatch

import pytest
import torch

from cda.checkpoint import CheckpointError, load_checkpoint
from cda.config import PRESETS, DataConfig, preset
from cda.data import DatasetNotFoundError, dataset_info, load_split
from cda.models import UnknownModelError, bn_layers, create_model, list_models


def test_fashion_mnist_loads_as_uint8(tiny_data):
    train, test = tiny_data
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (1, 28, 28)
    assert len(train) == 400 and len(test) == 200
    assert torch.bincount(train.labels).tolist() == [40] * 10


def test_full_fashion_mnist_sizes():
    train = load_split(DataConfig(), train=True)
    assert len(train) == 60000 and train.info.num_classes == 10


def test_digits_loads_with_a_fixed_split():
    train, test = load_split(DataConfig(name="digits"), True), load_split(DataConfig(name="digits"), False)
    assert train.images.shape[1:] == (1, 8, 8) and len(train) + len(test) == 1797
    assert int(train.images.max()) == 255


def test_missing_data_folder_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr("cda.data.DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    monkeypatch.setenv("CDA_DOWNLOAD_DIR", str(tmp_path / "dl"))
    monkeypatch.delenv("CDA_FASHION_MNIST", raising=False)
    with pytest.raises(DatasetNotFoundError) as err:
        load_split(DataConfig(), train=True)
    text = str(err.value)
    assert str(tmp_path / "nowhere") in text and "apt-get install dataset-fashion-mnist" in text
    # a folder that was named but does not exist is an error of its own (never a fallback to other data)
    with pytest.raises(DatasetNotFoundError, match=f"data root {tmp_path / 'missing'} .* does not exist"):
        load_split(DataConfig(root=str(tmp_path / "missing")), train=True)


def test_truncated_idx_file_is_reported(tmp_path):
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(b"\x00\x00\x08\x03\x00\x00\x00\x05")  # header promising data that is not there
    with pytest.raises(DatasetNotFoundError, match="not a readable idx file"):
        load_split(DataConfig(root=str(tmp_path)), train=True)


def test_imagenet_folder_missing_is_explained(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="train/<class>"):
        load_split(DataConfig(name="imagenet1k", root=str(tmp_path)), train=True)


def test_unknown_dataset_and_architecture():
    with pytest.raises(KeyError, match="unknown dataset"):
        dataset_info("mnist-9000")
    with pytest.raises(UnknownModelError, match="unknown architecture 'resnet9000'") as err:
        create_model("resnet9000", 10)
    text = str(err.value)  # the error names what exists and what was probably meant
    assert "Did you mean 'resnet50'" in text and all(name in text for name in list_models())
    with pytest.raises(UnknownModelError, match="Did you mean 'timm/vit_tiny_patch16_224'"):
        create_model("timm/vit_tiny_patch16_244", 10)


# Models over 15M parameters: CI builds them for 1 channel (the path that replaces the stem); the
# 3-channel stem is torchvision's or timm's own, covered by the light members of the same families.
HEAVY = ("resnet50*", "resnet101*", "timm/mixer*", "timm/resmlp*")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", list_models())
def test_every_listed_model_builds_and_gives_logits(name, channels, device, request):
    """Every name list_models() gives builds for 1 and 3 channels and returns [N, classes]
    logits at 32 px (the smallest size every listed model takes: DenseNet-121 halves
    its input 5 times); those listed as recovery teachers have BatchNorm layers, and only those."""
    if channels == 3 and any(fnmatch(name, p) for p in HEAVY) and not request.config.getoption("--all-models"):
        pytest.skip(f"{name} is heavy (over 15M parameters); its 1-channel case runs; --all-models runs this one")
    model = create_model(name, 7, channels, 32).to(device).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, 32, 32, device=device))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    assert out.device.type == torch.device(device).type
    assert bool(bn_layers(model)) == (name in list_models(teachers=True))


def test_list_models_filters_and_covers_the_presets():
    assert list_models("resnet18*") == ["resnet18", "resnet18_modified"]
    assert list_models("timm/*", teachers=True) == []  # transformers and MLPs have no BatchNorm2d
    assert set(list_models(teachers=True)) < set(list_models())
    for name in PRESETS:  # every architecture a preset names is listed; its teacher can drive recovery
        cfg = preset(name)
        assert cfg.squeeze.arch in list_models(teachers=True) and cfg.eval.arch in list_models()


def test_registered_builders_are_listed():
    from cda import models

    @models.register_model(teacher=True)
    def tiny_registered_net(num_classes, in_channels, image_size):
        return torch.nn.Sequential(torch.nn.Conv2d(in_channels, 4, 3), torch.nn.BatchNorm2d(4),
                                   torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, num_classes))

    try:
        assert "tiny_registered_net" in list_models("tiny_*", teachers=True)
        assert create_model("tiny_registered_net", 3, 1, 8)(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    finally:
        models._REGISTRY.pop("tiny_registered_net")
    assert list_models("tiny_*") == []


@pytest.mark.parametrize("name, channels, size", [
    ("convnet4_w32_in", 3, 32), ("convnet2_w8_none", 1, 28), ("vit_p2_d1_w32", 1, 8), ("shufflenet_v2_x0_5", 1, 32),
])
def test_unlisted_family_members_build(name, channels, size):
    """The open-ended families build names that list_models() does not enumerate."""
    assert name not in list_models()
    model = create_model(name, 7, channels, size).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 7)


def test_small_input_variant_keeps_resolution():
    model = create_model("resnet18_modified", 10, 3, 32)
    assert model.conv1.stride == (1, 1) and model.conv1.kernel_size == (3, 3)
    assert isinstance(model.maxpool, torch.nn.Identity)


def test_pretrained_weights_without_internet_fail_plainly(monkeypatch, tmp_path):
    from cda.models import PretrainedWeightsError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr("torch.hub.load_state_dict_from_url",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("network is unreachable")))
    with pytest.raises(PretrainedWeightsError, match="without internet"):
        create_model("resnet18", 1000, pretrained="IMAGENET1K_V1")


def test_checkpoint_round_trip_and_bad_checkpoints(tiny_teacher, tmp_path):
    model, meta, path = tiny_teacher
    back, back_meta = load_checkpoint(path, dataset_info("fashion_mnist"))
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(back(x), model.eval()(x))
    assert back_meta["arch"] == "convnet3_w16" and back_meta["metrics"]["top1"] == meta["metrics"]["top1"]
    # A teacher whose class count or channels differ from the dataset's.
    with pytest.raises(CheckpointError, match="10 classes, but cifar100 has 100"):
        load_checkpoint(path, dataset_info("cifar100"))
    with pytest.raises(CheckpointError, match="1 input channels, but cifar10 images have 3"):
        load_checkpoint(path, dataset_info("cifar10"))
    # Truncated.
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(cut)
    # Foreign: a plain state dict.
    foreign = tmp_path / "foreign.pt"
    torch.save(model.state_dict(), foreign)
    with pytest.raises(CheckpointError, match="not a cda checkpoint"):
        load_checkpoint(foreign)


def test_imagefolder_tree_streams_and_trains(tmp_path, tiny_data):
    """A train/ and val/ ImageFolder tree (made of real Fashion-MNIST images) goes through the folder path."""
    from PIL import Image

    from cda.config import SqueezeConfig
    from cda.squeeze import squeeze

    train, _ = tiny_data
    for sub in ("train", "val"):
        for k in range(3):
            folder = tmp_path / sub / f"class{k}"
            folder.mkdir(parents=True)
            for i, image in enumerate(train.images[train.labels == k][:8]):
                Image.fromarray(image[0].numpy()).save(folder / f"{i}.png")
    data = DataConfig(name="imagefolder", root=str(tmp_path), image_size=28, workers=0)
    split = load_split(data, train=True)
    assert split.info.num_classes == 3 and split.info.classes == ("class0", "class1", "class2")
    images, labels = next(split.batches(5))
    assert images.dtype == torch.uint8 and images.shape == (5, 3, 28, 28)
    assert torch.equal(split.take([0]), load_split(data, train=False).take([0]))  # same first image, center view
    _, meta = squeeze(data, SqueezeConfig(arch="convnet2_w8", epochs=1, batch_size=8), progress=False)
    assert 0 <= meta["metrics"]["top1"] <= 100


def test_wrong_folder_layout_is_explained(tmp_path):
    from PIL import Image

    for k in range(3):  # an "ImageNet-1K" train folder with 3 classes
        (tmp_path / "train" / f"n{k:08d}").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "train" / f"n{k:08d}" / "a.png")
    with pytest.raises(DatasetNotFoundError, match="has 3 class folders, but imagenet1k has 1000 classes"):
        load_split(DataConfig(name="imagenet1k", root=str(tmp_path)), train=True)


def test_squeeze_is_deterministic_for_its_seed():
    """The teacher's initial weights come from SqueezeConfig.seed, not from whatever the global
    random state happens to be (a cached teacher must be rebuildable)."""
    from cda.config import SqueezeConfig
    from cda.squeeze import squeeze

    data = DataConfig(train_per_class=10, test_per_class=5)
    cfg = SqueezeConfig(arch="convnet3_w8", epochs=1, batch_size=32)
    torch.rand(7)  # disturb the global generator
    a, _ = squeeze(data, cfg, progress=False)
    b, _ = squeeze(data, cfg, progress=False)
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)
