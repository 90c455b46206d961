"""The squeeze-model grid (cda_squeeze_grid): several teachers in one study through
Context.for_teacher, each recovering and relabeling its own sets, in the step-by-step run."""
from dataclasses import replace

import pytest

from cda import studies
from cda.cells import Context
from cda.config import preset
from cda.pipeline import Workspace
from cda.plan import dataset_shape, make_plan
from cda.studies.cda_squeeze_grid import NAME, recovery_models, student_archs
from cda.verdicts import study_verdicts


def _context(name: str, tmp_path, **kw) -> Context:
    cfg = replace(preset(name), cache_dir=str(tmp_path / "cache"), speed="fixed")  # no speed timing here
    return Context(Workspace(cfg, progress=False, log=lambda m: None), name, **kw)


def test_another_teachers_context_shares_the_plan_and_keeps_its_own_teacher(tmp_path):
    root = _context("smoke", tmp_path, deferred=True)
    other = replace(root.cfg.squeeze, epochs=1)
    child = root.for_teacher(other)
    assert root.for_teacher(root.cfg.squeeze) is root and child.for_teacher(other) is child
    assert child.cfg.squeeze == other and root.cfg.squeeze != other
    assert child.ws.cache.root == root.ws.cache.root and child.ws.cache.ledger is root.ws.cache.ledger
    assert child.planned is root.planned and child.images is root.images and child.seeds == root.seeds
    root.bar = "bar"
    assert child.bar == "bar"
    assert child.row("sre2l", 2, 0)["teacher"] == "convnet3_w16"
    assert child._label("cda", 2, {}) == "CDA, IPC 2, recovered by convnet3_w16 (1 epochs)"
    assert root._label("cda", 2, {}) == "CDA, IPC 2"


def test_the_grid_at_each_preset(tmp_path):
    cpu = _context("cpu", tmp_path)
    assert [(s.arch, s.epochs) for s in recovery_models(cpu)] == [("convnet3", 20), ("convnet3", 5), ("convnet4", 5)]
    assert student_archs(cpu) == ("convnet3", "convnet3_none")
    digits = _context("digits", tmp_path)  # 8 px: a fourth block would halve it to nothing
    assert [(s.arch, s.epochs) for s in recovery_models(digits)] == [("convnet3", 60), ("convnet3", 15),
                                                                     ("convnet2", 15)]
    smoke = _context("smoke", tmp_path)
    assert [(s.arch, s.epochs) for s in recovery_models(smoke)] == [("convnet3_w16", 2), ("convnet3_w16", 1)]
    assert student_archs(smoke) == ("convnet3_w16",)
    assert [(s.arch, s.epochs) for s in recovery_models(smoke, [["convnet3_w8", None], ["convnet3_w16", 2]])] \
        == [("convnet3_w8", 2), ("convnet3_w16", 2)]
    # the paper's grid: the released ResNets recover, the ResNets learn; each teacher's run can be planned
    paper = _context("paper", tmp_path)
    grid = recovery_models(paper)
    assert [s.arch for s in grid] == ["resnet18", "resnet50", "resnet101"] and all(s.pretrained for s in grid)
    assert student_archs(paper) == ("resnet18", "resnet50", "resnet101")
    with pytest.raises(ValueError, match="no default grid for the teacher 'resnet18_modified'; pass teachers="):
        recovery_models(_context("cpu", tmp_path).for_teacher(replace(cpu.cfg.squeeze, arch="resnet18_modified")))


@pytest.mark.slow
def test_each_teacher_of_the_papers_grid_can_be_planned(tmp_path):
    """`cda plan` at the paper preset with each of the grid's recovery models as its teacher."""
    paper = _context("paper", tmp_path)
    for s in recovery_models(paper)[1:]:  # the preset's own ResNet-18: tests/test_plan.py
        cfg = replace(paper.cfg, squeeze=s)
        text = make_plan(cfg, dataset_shape(cfg)).render()
        assert "imagenet1k (1000 classes, 3x224x224)" in text


@pytest.mark.slow
def test_the_squeeze_grid_runs_step_by_step_with_each_teacher_labeling_its_own_sets(tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_CACHE_DIR", str(tmp_path / "cache"))
    overrides = {"recover.iterations": 2, "eval.aug.epochs": 1, "eval.labels": "stored"}
    lines = []
    s = studies.open(NAME, "smoke", overrides, root=tmp_path, progress=False, log=lines.append)
    s.distill()
    # the preset's teacher last (it is shared with other studies)
    assert list(s.sets) == ["SRe2L, IPC 2, recovered by convnet3_w16 (1 epochs)",
                            "CDA, IPC 2, recovered by convnet3_w16 (1 epochs)", "SRe2L, IPC 2", "CDA, IPC 2"]
    assert not (s.sets["CDA, IPC 2"].images == s.sets["CDA, IPC 2, recovered by convnet3_w16 (1 epochs)"].images).all()
    assert len(list((tmp_path / "cache" / "teacher").glob("*/"))) == 2
    s.labels()  # stored labels: each set's by its own teacher, under the key its students read
    assert len([p for p in (tmp_path / "cache" / "labels").iterdir() if p.is_dir()]) == 4
    result = s.finish()
    assert len([p for p in (tmp_path / "cache" / "labels").iterdir() if p.is_dir()]) == 4  # no label set made twice
    df = result.df
    top = df[df.metric == "top1"]
    students = top[top.ipc.notna()]
    assert set(zip(students.teacher, students.teacher_epochs, students.method)) == {
        ("convnet3_w16", e, m) for e in (1, 2) for m in ("sre2l", "cda")}
    assert sorted(top[top.method == "teacher"].teacher_epochs) == [1, 2]
    assert {p.name for p in result.figures} == {f"{NAME}_heatmap.png", f"{NAME}_heatmap.pdf"}
    assert [c for c, _ in s.tables()][1].startswith("CDA − SRe2L")
    verdicts = study_verdicts(NAME, df, studies.get(NAME).claims, tmp_path / "results")
    assert {v["cell"] for v in verdicts} == {f"teacher=convnet3_w16, teacher_epochs={e}, student=convnet3_w16"
                                             for e in (1, 2)}
