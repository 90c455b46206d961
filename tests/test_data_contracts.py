"""Data contracts at every door (issue 24): each broken input is refused with one line naming the
file or folder and the fix, or gives the correct result; never a silently wrong one."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from cda.cli import main
from cda.config import ConfigError, DataConfig, apply_overrides, preset
from cda.contracts import DataError, check_image_set, check_teacher, open_image, tree_classes
from cda.data import DatasetNotFoundError, info_for, load_split, with_image_size
from cda.tuning import TuneConfig


def make_tree(root, classes=("a", "b", "c"), val=None, n=2, size=12, sizes=None):
    """An ImageFolder tree of random RGB PNGs: train/<class>/k.png and val/<class>/k.png."""
    rng = np.random.default_rng(0)
    for sub, names in (("train", classes), ("val", classes if val is None else val)):
        for _i, c in enumerate(names):
            (root / sub / c).mkdir(parents=True, exist_ok=True)
            for k in range(n):
                side = (sizes or {}).get(c, size)
                Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(root / sub / c / f"{k}.png")
    return root


def folder_cfg(root, **kw):
    return DataConfig(name="imagefolder", root=None if root is None else str(root), workers=0, **kw)


def one_line_error(capsys, argv, code=1):
    """Run the CLI; it must fail with `code` and print exactly one line, no traceback."""
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# 1. train/val class mismatch --------------------------------------------------------------------

@pytest.mark.parametrize("val, expected", [(("a", "b", "x"), "missing in val/: c; extra in val/: x"),
                                           (("a", "b"), "missing in val/: c"),
                                           (("a", "b", "c", "d"), "extra in val/: d")])
def test_class_folders_must_match_between_splits(tmp_path, val, expected):
    make_tree(tmp_path, val=val)
    for split in (True, False):  # both doors: training images would be labelled by another class list
        with pytest.raises(DataError, match=expected):
            load_split(folder_cfg(tmp_path), train=split)
    with pytest.raises(DataError, match=expected):
        info_for(folder_cfg(tmp_path))


def test_a_test_split_is_checked_too(tmp_path):
    make_tree(tmp_path)
    (tmp_path / "test" / "a").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "test" / "a" / "0.png")
    (tmp_path / "test" / "b").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "test" / "b" / "0.png")
    with pytest.raises(DataError, match="missing in test/: c"):
        tree_classes(tmp_path)


def test_matching_splits_share_one_class_index(tmp_path):
    make_tree(tmp_path, classes=("cat", "dog", "emu"))
    train, val = load_split(folder_cfg(tmp_path), train=True), load_split(folder_cfg(tmp_path), train=False)
    assert train.folder.class_to_idx == val.folder.class_to_idx == {"cat": 0, "dog": 1, "emu": 2}
    assert train.info.classes == ("cat", "dog", "emu") and train.info.num_classes == 3


def test_own_data_refuses_a_mismatched_tree_before_anything_runs(tmp_path):
    from cda import own_data

    make_tree(tmp_path, val=("a", "b", "xc"))
    with pytest.raises(DataError, match="missing in val/: c; extra in val/: xc"):
        own_data.open(tmp_path, preset="smoke", root=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_names_the_class_mismatch_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CDA_CACHE_DIR", str(tmp_path / "cache"))
    make_tree(tmp_path / "tree", val=("a", "b", "x"))
    err = one_line_error(capsys, ["squeeze", "--preset", "smoke", "--set", "data.name=imagefolder", "--data-root",
                                  str(tmp_path / "tree"), "--out", str(tmp_path / "t.pt"), "--no-progress"])
    assert "missing in val/: c; extra in val/: x" in err


def test_load_image_folder_maps_named_folders_by_the_data_classes(tmp_path):
    from cda.official_formats import load_image_folder

    for c in ("cat", "emu"):  # "dog" has no images in this set: by position, emu would become class 1
        (tmp_path / c).mkdir()
        Image.new("RGB", (4, 4)).save(tmp_path / c / "0.png")
    assert load_image_folder(tmp_path, progress=False)[1].tolist() == [0, 1]
    assert load_image_folder(tmp_path, progress=False, classes=("cat", "dog", "emu"))[1].tolist() == [0, 2]
    with pytest.raises(DataError, match="emu name no class of the data"):
        load_image_folder(tmp_path, progress=False, classes=("cat", "dog"))


# 2. a data root that does not exist ------------------------------------------------------------------

def test_a_missing_root_is_an_error_never_other_data(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError, match="data root /nonexistent .*does not exist"):
        load_split(DataConfig(root="/nonexistent"), train=True)  # Debian's Fashion-MNIST is installed here
    make_tree(tmp_path / "real")
    monkeypatch.setenv("CDA_IMAGEFOLDER", str(tmp_path / "real"))
    assert len(load_split(folder_cfg(None), train=True)) == 6  # the variable alone is used
    with pytest.raises(DatasetNotFoundError, match=f"{tmp_path / 'typo'}"):
        load_split(folder_cfg(tmp_path / "typo"), train=True)  # a given root beats the variable, even mistyped
    monkeypatch.setenv("CDA_IMAGEFOLDER", str(tmp_path / "gone"))
    with pytest.raises(DatasetNotFoundError, match=r"from \$CDA_IMAGEFOLDER"):
        load_split(folder_cfg(None), train=True)
    with pytest.raises(DatasetNotFoundError, match="digits comes with scikit-learn"):
        load_split(DataConfig(name="digits", root=str(tmp_path)), train=True)


def test_cli_run_on_a_missing_root_fails_in_one_line(tmp_path, capsys):
    err = one_line_error(capsys, ["run", "--preset", "smoke", "--data-root", "/nonexistent", "--output-root",
                                  str(tmp_path), "--no-progress"])
    assert "data root /nonexistent" in err
    assert not list(tmp_path.rglob("results.json"))


# 3. config values that mean nothing ----------------------------------------------------------------

@pytest.mark.parametrize("key, value, field", [
    ("ipcs", [1, 1], "RunConfig.ipcs"), ("eval_seeds", [0, 0], "RunConfig.eval_seeds"),
    ("methods", ["cda", "cda"], "RunConfig.methods"), ("eval_seeds", [-1], "RunConfig.eval_seeds"),
    ("recover.seed", -1, "RecoverConfig.seed"), ("squeeze.seed", -1, "SqueezeConfig.seed"),
    ("eval.seed", -2, "EvalConfig.seed"), ("eval.aug.seed", -1, "AugConfig.seed"),
    ("cudd.init_seed", -1, "CuddConfig.init_seed"), ("data.subset_seed", -1, "DataConfig.subset_seed"),
    ("data.image_size", 32, "DataConfig.image_size"),  # Fashion-MNIST is 28 px and never resized
])
def test_meaningless_config_values_are_refused_naming_the_field(key, value, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        apply_overrides(preset("smoke"), {key: value})


def test_sound_values_still_pass():
    cfg = apply_overrides(preset("smoke"), {"ipcs": [1, 2], "eval_seeds": [0, 3], "data.image_size": 28})
    assert cfg.ipcs == (1, 2) and cfg.data.image_size == 28
    with pytest.raises(ConfigError, match="TuneConfig.seeds"):
        TuneConfig(seeds=(1, 1))


def test_cli_refuses_duplicates_before_running(capsys):
    err = one_line_error(capsys, ["run", "--preset", "smoke", "--set", "ipcs=[1,1]", "--print-config"], code=2)
    assert "RunConfig.ipcs=(1, 1)" in err and "more than once" in err
    err = one_line_error(capsys, ["run", "--preset", "smoke", "--set", "recover.seed=-1", "--print-config"], code=2)
    assert "RecoverConfig.seed=-1" in err


# 4. at least two classes, none empty -----------------------------------------------------------------

def test_one_class_and_empty_class_are_refused(tmp_path):
    make_tree(tmp_path / "one", classes=("a",))
    with pytest.raises(DataError, match="holds 1 class folder.*at least two"):
        load_split(folder_cfg(tmp_path / "one"), train=True)
    make_tree(tmp_path / "empty")
    for f in (tmp_path / "empty" / "val" / "b").iterdir():
        f.unlink()
    (tmp_path / "empty" / "val" / "b" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=f"{tmp_path / 'empty' / 'val' / 'b'} hold no images"):
        load_split(folder_cfg(tmp_path / "empty"), train=True)


# 5. the image size comes from the data ---------------------------------------------------------------

def test_image_size_is_read_from_the_tree(tmp_path):
    make_tree(tmp_path / "t", size=12)
    cfg = folder_cfg(tmp_path / "t")
    assert info_for(cfg).image_size == 12 and load_split(cfg, train=True).info.image_size == 12
    assert next(load_split(cfg, train=True).batches(6))[0].shape == (6, 3, 12, 12)
    assert with_image_size(cfg).image_size == 12  # into the config, so cache keys name the size
    assert info_for(replace(cfg, image_size=20)).image_size == 20  # a size given wins
    assert with_image_size(DataConfig()) == DataConfig()  # in-memory data keeps its config


def test_mixed_sizes_use_the_smallest_first_image(tmp_path):
    make_tree(tmp_path, sizes={"a": 16, "b": 10, "c": 14})
    assert info_for(folder_cfg(tmp_path)).image_size == 10


def test_own_data_uses_the_tree_size(tmp_path):
    from cda import own_data

    make_tree(tmp_path / "t", size=12)
    study = own_data.open(tmp_path / "t", preset="smoke", root=tmp_path / "out", progress=False, log=lambda s: None)
    assert study.cfg.data.image_size == 12
    study = own_data.open(tmp_path / "t", preset="smoke", image_size=16, root=tmp_path / "out", progress=False,
                          log=lambda s: None)
    assert study.cfg.data.image_size == 16


def test_cli_plan_shows_the_tree_size(tmp_path, capsys):
    make_tree(tmp_path, size=12)
    assert main(["plan", "--preset", "smoke", "--set", "data.name=imagefolder", "--data-root", str(tmp_path)]) == 0
    assert "imagefolder (3 classes, 3x12x12)" in capsys.readouterr().out


# 6. unreadable, truncated and odd-mode images ----------------------------------------------------------

def test_broken_images_are_named_in_the_dataloader_workers(tmp_path):
    make_tree(tmp_path)
    bad = tmp_path / "train" / "b" / "1.png"
    bad.write_text("not an image")
    split = load_split(replace(folder_cfg(tmp_path), workers=1), train=True)
    with pytest.raises(DataError) as err:
        list(split.batches(6))
    assert str(err.value) == f"{bad} is not an image PIL can read: replace it with an intact image or remove it"
    with pytest.raises(DataError, match=str(bad)):
        split.take([3])  # in the main process too


def test_truncated_image_is_named_by_load_image_folder(tmp_path):
    from cda.official_formats import load_image_folder

    (tmp_path / "000").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "000" / "0.png")
    path = tmp_path / "000" / "0.png"
    path.write_bytes(path.read_bytes()[:150])
    with pytest.raises(DataError, match=f"{path} is truncated"):
        load_image_folder(tmp_path, progress=False)


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    from cda.official_formats import load_image_folder

    (tmp_path / "000").mkdir()
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "000" / "0.png")
    assert Image.open(tmp_path / "000" / "0.png").mode.startswith("I")
    images, _ = load_image_folder(tmp_path, progress=False)
    assert images.shape == (1, 1, 1, 4) and images.flatten().tolist() == [0, 1, 128, 255]
    assert np.asarray(open_image(tmp_path / "000" / "0.png", 3))[0, :, 0].tolist() == [0, 1, 128, 255]


def test_odd_modes_are_refused_with_path(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)).save(path)
    with pytest.raises(DataError, match=f"{path} has pixel mode 'F'"):
        open_image(path, 1)


# 7. sets and teachers that do not fit the data -------------------------------------------------------------

def test_evaluate_images_on_an_empty_set():
    from cda.evaluator import evaluate_images

    with pytest.raises(DataError, match="holds no images"):
        evaluate_images(torch.zeros(0, 1, 28, 28, dtype=torch.uint8), torch.zeros(0, dtype=torch.long),
                        DataConfig(test_per_class=2), progress=False)


def test_image_set_checks_name_what_differs():
    info = info_for(DataConfig())
    ok = torch.zeros(2, 1, 28, 28, dtype=torch.uint8), torch.tensor([0, 9])
    check_image_set(*ok, info)
    with pytest.raises(DataError, match="3x32x32 .*1x28x28: the channels and size differ"):
        check_image_set(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), ok[1], info)
    with pytest.raises(DataError, match="3x28x28 .*: the channels differ"):
        check_image_set(torch.zeros(2, 3, 28, 28, dtype=torch.uint8), ok[1], info)
    with pytest.raises(DataError, match="labels range over 0..10"):
        check_image_set(ok[0], torch.tensor([0, 10]), info)


def test_teacher_that_does_not_take_the_images():
    from cda.models import create_model

    info = info_for(DataConfig())
    teacher = create_model("convnet3_w16", 10, 3, 28).eval()
    with pytest.raises(DataError, match="the teacher does not take fashion_mnist's 1x28x28 images"):
        check_teacher(teacher, info, "cpu")
    with pytest.raises(DataError, match="gives \\(7,\\) outputs per image, but fashion_mnist has 10 classes"):
        check_teacher(create_model("convnet3_w16", 7, 1, 28).eval(), info, "cpu")
    check_teacher(create_model("convnet3_w16", 10, 1, 28).eval(), info, "cpu")


def test_cli_evaluate_of_a_set_of_another_shape(tmp_path, capsys):
    from cda.data import dataset_info
    from cda.recover import Distilled

    Distilled(torch.zeros(10, 3, 32, 32, dtype=torch.uint8), torch.arange(10), {"method": "x", "ipc": 1}).save(
        tmp_path / "set", dataset_info("cifar10"))
    err = one_line_error(capsys, ["evaluate", "--preset", "smoke", "--distilled", str(tmp_path / "set"),
                                  "--set", "eval.labels=hard", "--no-progress"])
    assert f"distilled set {tmp_path / 'set'} holds 3x32x32 images (CxHxW), but fashion_mnist here is 1x28x28" in err
