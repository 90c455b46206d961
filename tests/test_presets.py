"""Every preset assembles every method's config at every IPC, without running anything."""
from dataclasses import replace

import pytest

from cda.config import PRESETS, RunConfig, from_dict, preset, to_dict
from cda.methods import recover_for
from cda.studies.cudd import CUDD_ABLATIONS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_method_assembles_at_every_ipc(name):
    cfg = preset(name)
    assert cfg.data.name and from_dict(RunConfig, to_dict(cfg)) == cfg
    for ipc in cfg.ipcs:
        for method in ("sre2l", "cda"):
            r = recover_for(cfg, method, ipc)
            assert r.ipc == ipc and (r.curriculum.schedule == "none") == (method == "sre2l")
        c = cfg.cudd_for(ipc)
        assert c.stages[-1] == ipc and c.recover.ipc == ipc and c.student.labels != "stored"
        assert c.recover.curriculum.schedule == "none"
        for changes in CUDD_ABLATIONS.values():  # the CUDD ablation notebook's variants
            v = replace(cfg, cudd=replace(cfg.cudd, **changes)).cudd_for(ipc)
            assert v.stages[-1] == ipc and (v.stages == (ipc,) or changes.get("stage_fractions") != (1.0,))


def test_paper_cudd_students_follow_the_official_recipe():
    cfg = preset("paper")
    assert cfg.eval.labels == "stored"  # final students: FKD labels, as SRe2L / CDA
    c = cfg.cudd_for(50)
    assert c.stages == (20, 50)
    s = c.student
    assert (s.arch, s.labels, s.aug.batch_size, c.student_epochs) == ("resnet18", "online", 128, 150)
    assert c.warm_start and c.student_lr_warm == cfg.eval.lr / 2


def test_a_stored_label_eval_gives_cudd_online_students():
    cfg = replace(preset("cpu"), eval=replace(preset("cpu").eval, labels="stored"))
    assert cfg.cudd_for(10).student.labels == "online"


def test_paper_presets_name_their_datasets_and_settings():
    from cda.data import info_for

    paper, tiny, big = preset("paper"), preset("tiny_imagenet"), preset("imagenet21k")
    assert [p.data.name for p in (paper, tiny, big)] == ["imagenet1k", "tiny_imagenet", "imagenet21k"]
    assert all(not p.recover.amp for p in (paper, tiny, big))  # fp32 recovery, as the official code
    assert (tiny.recover.lr, tiny.recover.r_bn, tiny.recover.jitter, tiny.recover.iterations) == (0.4, 0.05, 4, 4000)
    assert (big.recover.lr, big.recover.r_bn, big.recover.iterations) == (0.05, 0.25, 2000)
    assert info_for(tiny.data).image_size == 64 and info_for(tiny.data).num_classes == 200
    big_info = info_for(big.data)
    assert big_info.mean == (0.0, 0.0, 0.0) and big_info.std == (1.0, 1.0, 1.0)
    # unnormalized also on a folder of any class count (a small stand-in)
    assert info_for(replace(big.data, name="imagefolder")).std == (1.0, 1.0, 1.0)
    assert info_for(paper.data).std == (0.229, 0.224, 0.225)


def test_a_standin_loads_under_the_tiny_preset(tmp_path):
    from cda.data import load_split
    from cda.standin import make_standin

    make_standin(tmp_path, classes=200, size=64, train_per_class=1, val_per_class=1, progress=False)
    cfg = preset("tiny_imagenet", **{"data.root": str(tmp_path), "data.workers": 0})
    train = load_split(cfg.data, train=True)
    x, y = next(train.batches(4))
    assert train.info.num_classes == 200 and tuple(x.shape) == (4, 3, 64, 64)


def test_recovery_and_relabel_default_to_fp32_with_tf32_on_cuda(monkeypatch):
    import torch

    from cda.config import RelabelConfig, config_hash
    from cda.runtime import Runtime
    from cda.training import resolve_device

    assert RelabelConfig().amp is False and config_hash(RelabelConfig()) == config_hash(RelabelConfig(amp=False))
    assert config_hash(RelabelConfig(amp=True)) != config_hash(RelabelConfig())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        resolve_device("cpu")
        resolve_device("cuda")
        assert not torch.backends.cuda.matmul.allow_tf32  # resolving a device changes no global flag
        with Runtime("cuda").applied():  # a CUDA run's fp32 work uses TF32, inside the block it enters
            assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
