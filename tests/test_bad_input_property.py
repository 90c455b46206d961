"""Bad input found by a machine (issue 24): Hypothesis builds small ImageFolder trees, image files,
image sets and configs, broken in the ways users break them, and checks that each gives either the
correct result or a one-line error that names the cause (and the file or folder); never a silently
wrong result. No training: the loaders and validators only."""
import tempfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from cda.config import ConfigError, DataConfig, apply_overrides, preset
from cda.contracts import DataError, check_image_set, open_image
from cda.data import info_for, load_split

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GOOD_KINDS = ("rgb", "gray", "rgba", "palette", "gray16")
BAD_KINDS = ("not_an_image", "truncated", "float")
IMAGE_FAULTS = ("is truncated", "is not an image PIL can read", "cannot be decoded", "pixel mode 'F'")


def write_image(path: Path, kind: str, side: int, rng: np.random.Generator) -> Path:
    """One image file of `kind`; returns its path (a float image is a TIFF: PNG cannot hold it)."""
    if kind == "float":
        path = path.with_suffix(".tif")
        Image.fromarray(rng.random((side, side)).astype(np.float32)).save(path)
    elif kind == "not_an_image":
        path.write_bytes(b"this is no PNG")
    elif kind == "gray16":
        Image.fromarray(rng.integers(0, 65536, (side, side), dtype=np.uint16)).save(path)
    else:
        rgb = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        image = Image.fromarray(rgb)
        image = {"rgb": image, "gray": image.convert("L"), "rgba": image.convert("RGBA"),
                 "palette": image.convert("P"), "truncated": image}[kind]
        image.save(path)
        if kind == "truncated":
            path.write_bytes(path.read_bytes()[: max(60, path.stat().st_size // 3)])
    return path


@st.composite
def trees(draw):
    # mostly sound trees with one thing wrong, so that both outcomes are common
    one_class = draw(st.integers(0, 7)) == 0
    names = draw(st.lists(st.sampled_from("abcde"), min_size=1, max_size=1 if one_class else 4, unique=True)
                 if one_class else st.lists(st.sampled_from("abcde"), min_size=2, max_size=4, unique=True))
    val = list(names)
    change = draw(st.sampled_from(["none"] * 5 + ["drop", "add", "rename"]))
    if change == "drop" and len(val) > 1:
        val.pop(draw(st.integers(0, len(val) - 1)))
    elif change == "add":
        val.append("z")
    elif change == "rename":
        val[draw(st.integers(0, len(val) - 1))] = "x"
    image = st.tuples(st.sampled_from(GOOD_KINDS * 10 + BAD_KINDS), st.sampled_from([6, 8, 10]))
    files = {(s, c): draw(st.lists(image, min_size=0 if draw(st.integers(0, 19)) == 0 else 1, max_size=2))
             for s, cs in (("train", names), ("val", val)) for c in cs}
    return sorted(names), sorted(val), files


def build(root: Path, files, seed: int) -> list[tuple[str, Path]]:
    """Write the tree; returns its faults as (what the error says, the path it names)."""
    rng = np.random.default_rng(seed)
    faults = []
    for (split, c), images in files.items():
        folder = root / split / c
        folder.mkdir(parents=True)
        for k, (kind, side) in enumerate(images):
            path = write_image(folder / f"{k}.png", kind, side, rng)
            if kind in BAD_KINDS:
                faults.append(("image", path))
        if not images:
            faults.append(("hold no images", folder))
    return faults


@SETTINGS
@given(tree=trees(), seed=st.integers(0, 2**16))
def test_trees_load_correctly_or_fail_naming_the_cause(tree, seed):
    names, val, files = tree
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        faults = build(root, files, seed)
        for split, classes in (("train", names), ("val", val)):
            if len(classes) < 2:
                faults.append(("at least two", root / split))
        if names != val:
            faults.append(("different class folders", root))
        cfg = DataConfig(name="imagefolder", root=str(root), workers=0)
        try:
            splits = [load_split(cfg, train=t) for t in (True, False)]
            seen = [(x, y) for s in splits for x, y in s.batches(64)]
        except DataError as err:
            message = str(err)
            assert "\n" not in message
            assert faults, f"no fault in the tree, yet: {message}"
            assert any(str(path) in message and (any(f in message for f in IMAGE_FAULTS) if what == "image"
                                                 else what in message) for what, path in faults), (message, faults)
            event(f"refused: {sorted({what for what, _ in faults})}")  # pytest --hypothesis-show-statistics
            return
        assert not faults, f"loaded a tree with faults {faults}"
        event("loaded")
        side = min(min(s for _, s in files[("train", c)][:1]) for c in names)  # each class's first image
        index = {c: i for i, c in enumerate(names)}
        for split, (x, y) in zip(splits, seen):
            assert split.info.image_size == side and x.shape[1:] == (3, side, side)
            expected = [index[Path(p).parent.name] for p, _ in split.folder.samples]
            assert y.tolist() == expected  # every image labelled by its own class folder's name


@SETTINGS
@given(kind=st.sampled_from(GOOD_KINDS + BAD_KINDS), channels=st.sampled_from([1, 3]), seed=st.integers(0, 999))
def test_image_files_decode_exactly_or_fail_naming_the_file(kind, channels, seed):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_image(Path(tmp) / "image.png", kind, 5, np.random.default_rng(seed))
        try:
            image = open_image(path, channels)
        except DataError as err:
            assert kind in BAD_KINDS and str(path) in str(err) and "\n" not in str(err)
            return
        assert kind in GOOD_KINDS
        array = np.asarray(image)
        assert array.dtype == np.uint8 and array.shape == ((5, 5) if channels == 1 else (5, 5, 3))
        if kind == "gray16":  # scaled to 8 bits, not clipped: the 16-bit values divided by 257, rounded
            raw = np.asarray(Image.open(path)).astype(np.float64)
            gray = array if channels == 1 else array[..., 0]
            assert np.array_equal(gray, np.round(raw * 255 / 65535).astype(np.uint8))


@SETTINGS
@given(n=st.integers(0, 3), c=st.sampled_from([1, 3]), h=st.sampled_from([28, 32]), w=st.sampled_from([28, 32]),
       labels=st.lists(st.integers(-1, 11), min_size=0, max_size=4))
def test_image_sets_fit_the_data_or_say_what_differs(n, c, h, w, labels):
    info = info_for(DataConfig())  # Fashion-MNIST: 1x28x28, 10 classes
    images, y = torch.zeros(n, c, h, w, dtype=torch.uint8), torch.tensor(labels, dtype=torch.long)
    fits = n > 0 and (c, h, w) == (1, 28, 28) and len(labels) == n and all(0 <= v < 10 for v in labels)
    try:
        check_image_set(images, y, info)
    except DataError as err:
        message = str(err)
        assert not fits and "\n" not in message
        assert any(k in message for k in ("no images", "channels", "size", "labels")), message
        return
    assert fits


@SETTINGS
@given(ipcs=st.lists(st.integers(1, 4), min_size=1, max_size=3), seeds=st.lists(st.integers(-2, 3), min_size=1, max_size=3),
       recover_seed=st.integers(-2, 3))
def test_configs_refuse_repeats_and_negative_seeds_naming_the_field(ipcs, seeds, recover_seed):
    overrides = {"ipcs": ipcs, "eval_seeds": seeds, "recover.seed": recover_seed}
    problems = {"RunConfig.ipcs": len(set(ipcs)) < len(ipcs),
                "RunConfig.eval_seeds": len(set(seeds)) < len(seeds) or min(seeds) < 0,
                "RecoverConfig.seed": recover_seed < 0}
    try:
        cfg = apply_overrides(preset("smoke"), overrides)
    except ConfigError as err:
        assert any(problems.values()) and "\n" not in str(err)
        assert any(field in str(err) for field, bad in problems.items() if bad), (str(err), problems)
        return
    assert not any(problems.values())
    assert cfg.ipcs == tuple(ipcs) and cfg.eval_seeds == tuple(seeds) and cfg.recover.seed == recover_seed

