"""One seed that varies every random part of a run (RunConfig.seeded), and the validation split
held out of the training set (DataConfig.validation, load_split(split="val"))."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from cda.config import SEED_PARTS, ConfigError, DataConfig, RunConfig, config_hash, derive_seed, preset
from cda.data import load_split
from cda.methods import options_for, recover_for


def _seeds(cfg: RunConfig, ipc: int = 10) -> dict:
    """Every seed a run hands to its random parts, read the way the methods read them."""
    cudd = cfg.cudd_for(ipc)
    return {"student": cfg.eval.seed, "views": cfg.eval.aug.seed, "synthesis": recover_for(cfg, "sre2l", ipc).seed,
            "cda synthesis": recover_for(cfg, "cda", ipc).seed, "random real": options_for(cfg, "random", ipc).seed,
            "cudd": cudd.init_seed, "cudd synthesis": cudd.recover.seed, "cudd student": cudd.student.seed,
            "cudd views": cudd.student.aug.seed}


@pytest.mark.parametrize("name", ["cpu", "paper"])  # paper: CUDD has its own student recipe
def test_one_seed_varies_every_part_and_is_deterministic(name):
    cfg = preset(name)
    a, b = cfg.seeded(1), cfg.seeded(2)
    assert a == cfg.seeded(1) and config_hash(a) == config_hash(cfg.seeded(1))
    sa, sb = _seeds(a), _seeds(b)
    assert [k for k in sa if sa[k] == sb[k]] == []  # every part moves with the seed
    assert a.eval_seeds == (a.eval.seed,)
    # the parts that must not move: the teacher, the images, the recipes
    assert a.squeeze == cfg.squeeze and a.data == cfg.data
    assert replace(a.eval, seed=cfg.eval.seed, aug=cfg.eval.aug) == cfg.eval
    assert replace(a.recover, seed=cfg.recover.seed) == cfg.recover
    # every distilled set and student is a different cache entry for another seed
    for method in ("sre2l", "cda", "cudd"):
        assert config_hash(options_for(a, method, 10)) != config_hash(options_for(b, method, 10))


def test_for_seed_keeps_the_old_behaviour_unless_asked_for_all():
    from cda.config import seeded_options

    cfg = preset("cpu", seed_scope="student")  # the cpu preset itself now draws everything from the seed
    rc = recover_for(cfg, "cda", 10)
    e, opts = cfg.for_seed(3, options=rc)  # seed_scope "student": only the student's seed moves
    assert e == replace(cfg.eval, seed=3) and opts == rc
    assert config_hash(cfg) == config_hash(replace(cfg, seed_scope="student"))  # hash-neutral default
    every = replace(cfg, seed_scope="all")
    e, opts = every.for_seed(3, eval_cfg=replace(cfg.eval, arch="resnet18"), options=rc)
    assert e == replace(every.seeded(3).eval, arch="resnet18")  # a study's own student recipe, reseeded
    assert opts == replace(rc, seed=every.seeded(3).recover.seed)  # a study's own recovery variant, reseeded
    random_opts = options_for(cfg, "random", 10)
    assert seeded_options(random_opts, 3).seed == options_for(every.seeded(3), "random", 10).seed
    nearest = options_for(cfg, "nearest_mean", 10)
    assert seeded_options(nearest, 3) == nearest  # nothing random to seed
    with pytest.raises(ConfigError, match="seed_scope='some'"):
        replace(cfg, seed_scope="some")


def test_derived_seeds_do_not_share_streams():
    seeds = [derive_seed(s, part) for s in range(50) for part in SEED_PARTS]
    assert len(set(seeds)) == len(seeds)  # no two (seed, part) pairs collide
    assert all(0 <= s < 2 ** 31 for s in seeds)
    assert derive_seed(3, "views") == derive_seed(3, "views")
    assert np.random.SeedSequence(0, spawn_key=(1,)).generate_state(1)[0] >> 1 == derive_seed(0, "views")
    with pytest.raises(ConfigError, match="unknown part 'noise'"):
        derive_seed(0, "noise")
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="non-negative integer"):
            preset("smoke").seeded(bad)


def test_validation_split_is_held_out_of_training_deterministically():
    cfg = DataConfig(name="digits", validation=5)
    train, val, test = load_split(cfg, train=True), load_split(cfg, split="val"), load_split(cfg, train=False)
    full = load_split(DataConfig(name="digits"), train=True)
    assert torch.equal(torch.bincount(val.labels), torch.full((10,), 5))
    assert len(train) + len(val) == len(full)
    # never overlapping, and together exactly the training set (compare the images as byte strings)
    rows = lambda split: {bytes(x.numpy().tobytes()) + bytes([int(y)]) for x, y in zip(split.images, split.labels)}
    assert not rows(train) & rows(val)
    assert rows(train) | rows(val) == rows(full)
    assert torch.equal(load_split(cfg, split="test").images, test.images)  # the test set is untouched
    assert torch.equal(load_split(cfg, split="val").images, val.images)  # deterministic ...
    other = load_split(replace(cfg, subset_seed=1), split="val")
    assert not torch.equal(other.images, val.images)  # ... and drawn from subset_seed
    # train_per_class subsets what is left, so the subset never holds a validation image
    sub = load_split(replace(cfg, train_per_class=20), split="train")
    assert torch.equal(torch.bincount(sub.labels), torch.full((10,), 20)) and not rows(sub) & rows(val)


def test_validation_is_hash_neutral_at_zero_and_bad_requests_are_explained():
    assert config_hash(DataConfig(validation=0)) == config_hash(DataConfig())
    assert config_hash(DataConfig(validation=500)) != config_hash(DataConfig())
    with pytest.raises(ValueError, match="DataConfig.validation=0"):
        load_split(DataConfig(name="digits"), split="val")
    with pytest.raises(ValueError, match="leaves no training images"):
        load_split(DataConfig(name="digits", validation=1000), train=True)
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        load_split(DataConfig(name="digits"), split="valid")
    with pytest.raises(ValueError, match="contradicts"):
        load_split(DataConfig(name="digits"), train=True, split="test")
    with pytest.raises(ConfigError, match="validation=-1"):
        DataConfig(validation=-1)


def test_validation_split_of_an_image_folder_stays_on_disk(tmp_path):
    from PIL import Image

    from cda.data import FolderSplit

    rng = np.random.default_rng(0)
    for k in range(3):
        folder = tmp_path / "train" / f"class{k}"
        folder.mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / f"{i}.png")
        (tmp_path / "val" / f"class{k}").mkdir(parents=True)  # val/ needs the same classes as train/
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "val" / f"class{k}" / "0.png")
    cfg = DataConfig(name="imagefolder", root=str(tmp_path), image_size=8, workers=0, validation=2)
    train, val = load_split(cfg, train=True), load_split(cfg, split="val")
    assert isinstance(train, FolderSplit) and isinstance(val, FolderSplit)
    assert train.train and not val.train  # the validation images get the evaluation view
    assert len(train) == 12 and torch.equal(torch.bincount(val.labels), torch.full((3,), 2))
    paths = lambda split: {p for p, _ in split.folder.samples}
    assert not paths(train) & paths(val) and len(paths(train) | paths(val)) == 18
    images, labels = next(val.batches(6))
    assert images.shape == (6, 3, 8, 8) and torch.equal(labels, val.labels)


def test_seeded_runs_draw_different_subsets_views_and_noise():
    """The seeds reach the code that uses them: another random-real subset, another batch order and
    crops, other starting noise; the same seed gives the same draws."""
    from cda.models import create_model
    from cda.recover import real_subset, recover
    from cda.relabel import epoch_plan

    train = load_split(DataConfig(name="digits"), train=True)
    cfg = preset("smoke")
    draws = {}
    for seed in (0, 1, 0):
        c = cfg.seeded(seed)
        subset = real_subset(train, 2, seed=options_for(c, "random", 2).seed).images
        plan = epoch_plan(c.eval.aug, 20, 8, epoch=0)[0]
        torch.manual_seed(123)  # the same teacher each time; the noise must come from the config
        teacher = create_model("convnet2_w8", 10, 1, 8)
        rc = replace(recover_for(c, "sre2l", 1), iterations=1, classes_per_group=10)
        images = recover(teacher, train.info, rc, progress=False).images
        draws.setdefault(seed, []).append((subset, plan.indices, plan.views, images))
    (a, _), (b,) = draws[0], draws[1]
    assert torch.equal(a[0], draws[0][1][0]) and np.array_equal(a[1], draws[0][1][1])  # deterministic
    assert torch.equal(a[3], draws[0][1][3])
    assert not torch.equal(a[0], b[0]) and not np.array_equal(a[1], b[1]) and not torch.equal(a[3], b[3])
