"""`cda evaluate --images DIR [--labels FKD_DIR] [--teacher CKPT --arch A]` on miniature released sets
written in the official layouts (image tree, FKD label folder, foreign checkpoints), and each bad
input named in one line with its file and the fix."""
import argparse

import pytest
import torch
from test_evaluator import write_official_fkd, write_official_tree

from cda.checkpoint import CheckpointError
from cda.cli import main
from cda.data import dataset_info
from cda.models import create_model
from cda.official_formats import LayoutError
from cda.recover import real_subset
from cda.released import load_teacher

INFO = dataset_info("fashion_mnist")
# the smoke preset's data (Fashion-MNIST, 20 test images per class), students of 2 epochs at batch 8
FAST = ["--preset", "smoke", "--device", "cpu", "--no-progress", "--set", "eval.aug.epochs=2",
        "--set", "eval.aug.batch_size=8", "--set", "eval.aug.crop_scale=[0.5,1.0]"]


@pytest.fixture(scope="module")
def released(tiny_data, tiny_teacher, tmp_path_factory):
    """20 real images as an official tree, its FKD labels (2 epochs of batch 8) and foreign teachers."""
    root = tmp_path_factory.mktemp("released")
    d = real_subset(tiny_data[0], 2, seed=5)
    write_official_tree(root / "syn_data", d.images, d.labels)
    teacher = tiny_teacher[0].eval()
    write_official_fkd(root / "FKD_cutmix_fp16", d.images, teacher, epochs=2, batch_size=8, scale=(0.5, 1.0))
    state = {k: v.clone() for k, v in teacher.state_dict().items()}
    torch.save(state, root / "torchvision.pth")
    torch.save({"state_dict": state, "epoch": 80}, root / "timm.pth.tar")
    return root, d, tiny_teacher[2]


def _run(capsys, *args):
    code = main(["evaluate", *FAST, *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err.strip()


def test_official_tree_with_its_fkd_labels_replays_the_stored_views(released, capsys, tmp_path):
    root, _, _ = released
    code, out, err = _run(capsys, "--images", root / "syn_data", "--labels", root / "FKD_cutmix_fp16",
                          "--set", f"cache_dir={tmp_path}")
    assert code == 0, err
    assert "student convnet3_w16: top-1" in out


@pytest.mark.parametrize("teacher,arch", [("cda", None), ("torchvision.pth", "convnet3_w16"),
                                          ("timm.pth.tar", "convnet3_w16")])
def test_official_tree_with_a_teacher_labels_online(released, capsys, tmp_path, teacher, arch):
    root, _, cda_ckpt = released
    path = cda_ckpt if teacher == "cda" else root / teacher
    code, out, err = _run(capsys, "--images", root / "syn_data", "--teacher", path,
                          *(["--arch", arch] if arch else []), "--set", f"cache_dir={tmp_path}")
    assert code == 0, err
    assert "top-1" in out


def test_the_official_tiny_imagenet_checkpoint_layout(tmp_path):
    model = create_model("resnet18_modified", 10, 1, 28)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": state, "optimizer": {}, "epoch": 49, "args": argparse.Namespace(model="resnet18")}, path)
    loaded, meta = load_teacher(path, INFO)
    assert meta["arch"] == "resnet18_modified"  # args.model with the small stem, as the official scripts
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    with pytest.raises(CheckpointError, match="does not match --arch resnet18 "):
        load_teacher(path, INFO, arch="resnet18")  # the plain stem's conv1 is 7x7


def _one_line_error(code, err, *needles):
    assert code != 0
    assert "\n" not in err, err
    for needle in needles:
        assert needle in err, err


def test_class_folders_that_are_not_the_teachers_classes(released, capsys, tmp_path):
    root, d, cda_ckpt = released
    half = d.labels < 5
    write_official_tree(tmp_path / "half", d.images[half], d.labels[half])
    code, _, err = _run(capsys, "--images", tmp_path / "half", "--teacher", cda_ckpt)
    _one_line_error(code, err, str(tmp_path / "half"), "holds 5 classes", "point --images at the whole set")
    other = create_model("convnet3_w16", 7, 1, 28)
    torch.save(other.state_dict(), tmp_path / "seven.pth")
    code, _, err = _run(capsys, "--images", root / "syn_data", "--teacher", tmp_path / "seven.pth",
                        "--arch", "convnet3_w16")
    _one_line_error(code, err, str(tmp_path / "seven.pth"), "7 classes", "pass the teacher of this dataset")


@pytest.mark.parametrize("setting,needle", [("eval.aug.batch_size=16", "made at batch 8 for 2 epochs"),
                                            ("eval.aug.epochs=3", "made at batch 8 for 2 epochs")])
def test_a_label_folder_made_at_another_batch_size_or_epoch_count(released, capsys, setting, needle):
    root, _, _ = released
    code, _, err = _run(capsys, "--images", root / "syn_data", "--labels", root / "FKD_cutmix_fp16", "--set", setting)
    _one_line_error(code, err, str(root / "FKD_cutmix_fp16"), needle, "--set eval.aug.batch_size=8")


def test_a_label_folder_for_another_tree(released, capsys, tmp_path):
    root, d, _ = released
    write_official_tree(tmp_path / "more", torch.cat([d.images, d.images[:10]]), torch.cat([d.labels, d.labels[:10]]))
    code, _, err = _run(capsys, "--images", tmp_path / "more", "--labels", root / "FKD_cutmix_fp16")
    _one_line_error(code, err, "are for 20 images, the image tree has 30")


def test_a_checkpoint_whose_architecture_does_not_match(released, capsys):
    root, _, cda_ckpt = released
    code, _, err = _run(capsys, "--images", root / "syn_data", "--teacher", root / "torchvision.pth", "--arch", "resnet18")
    _one_line_error(code, err, str(root / "torchvision.pth"), "does not match --arch resnet18", "pass the architecture")
    code, _, err = _run(capsys, "--images", root / "syn_data", "--teacher", root / "torchvision.pth")
    _one_line_error(code, err, "does not say its architecture", "--arch")
    code, _, err = _run(capsys, "--images", root / "syn_data", "--teacher", cda_ckpt, "--arch", "resnet18")
    _one_line_error(code, err, "a cda checkpoint of convnet3_w16, not --arch resnet18")


def test_load_teacher_errors_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_teacher(tmp_path / "nope.pth", INFO)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_teacher(tmp_path / "junk.pth", INFO, arch="resnet18")
    with pytest.raises(LayoutError):
        from cda.released import load_released_set
        load_released_set(tmp_path, INFO)
