"""Issue 28's architecture rows: students without BatchNorm (instance norm, none, a small ViT) and
timm's DeiT-Tiny, MLP-Mixer and ResMLP learn from a distilled set; teachers of several architectures
recover sets (the squeeze-model grid), and a teacher without BatchNorm is refused plainly."""
import pytest
import torch

from cda.config import AugConfig, EvalConfig, RecoverConfig
from cda.data import DATASETS
from cda.models import bn_layers, create_model
from cda.recover import Distilled, recover
from cda.student import train_student

RECOVER = RecoverConfig(ipc=1, iterations=2, classes_per_group=10, jitter=1)
AUG = AugConfig(epochs=2, batch_size=10)


@pytest.fixture(scope="module")
def distilled(tiny_teacher, tiny_data):
    return recover(tiny_teacher[0], tiny_data[0].info, RECOVER, progress=False)


def _trains(arch: str, d: Distilled, info, teacher) -> None:
    torch.manual_seed(0)  # train_student seeds the same way, so `before` is its initial student
    before = create_model(arch, info.num_classes, info.channels, info.image_size).state_dict()
    student = train_student(d, info, EvalConfig(arch=arch, aug=AUG), teacher, progress=False)
    after = student.state_dict()
    assert all(torch.isfinite(v.float()).all() for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before), f"{arch} did not train"
    with torch.no_grad():
        assert student(info.normalize(d.images)).shape == (len(d.images), info.num_classes)


@pytest.mark.parametrize("arch", ["convnet3_w8_in", "convnet3_w8_none", "vit_p4_d1_w32"])
def test_students_without_batchnorm_learn_from_a_distilled_set(arch, distilled, tiny_teacher, tiny_data):
    assert not bn_layers(create_model(arch, 10, 1, 28))
    _trains(arch, distilled, tiny_data[0].info, tiny_teacher[0])


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["timm/deit_tiny_patch16_224", "timm/mixer_s16_224", "timm/resmlp_24_224"])
def test_cudd_s_timm_students_learn_from_a_distilled_set(arch):
    """CUDD's transformer and MLP students (MIV-XJTU/CUDD@0bf778c training/train_FKD.py:156-161), on 32-px images (two
    16-px patches a side), with a ConvNet teacher's soft labels."""
    info = DATASETS["cifar10"]
    torch.manual_seed(0)
    teacher = create_model("convnet3_w8", 10, 3, 32).eval()
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    _trains(arch, Distilled(images, torch.arange(10)), info, teacher)


def test_patch_models_refuse_sizes_they_would_crop():
    with pytest.raises(ValueError, match="28 px is not a multiple of 16: its last 12 rows"):
        create_model("timm/deit_tiny_patch16_224", 10, 1, 28)


@pytest.mark.parametrize("arch", ["convnet3_w8", "resnet18_modified", "mobilenet_v2_modified",
                                  pytest.param("efficientnet_b0_modified", marks=pytest.mark.slow),
                                  pytest.param("densenet121_modified", marks=pytest.mark.slow)])
def test_teachers_of_several_architectures_recover_sets(arch, tiny_data):
    """The squeeze-model grid's rows: any teacher with BatchNorm drives recovery (BN statistics set
    from real images here; the grid trains them with cda.squeeze)."""
    train, _ = tiny_data
    torch.manual_seed(0)
    teacher = create_model(arch, 10, 1, 28).train()
    with torch.no_grad():
        teacher(train.info.normalize(train.images[:64]))
    d = recover(teacher.eval(), train.info, RECOVER, progress=False)
    assert d.images.shape == (10, 1, 28, 28) and d.images.dtype == torch.uint8
    assert torch.equal(d.labels, torch.arange(10))
    assert d.images.float().std() > 0


@pytest.mark.parametrize("arch", ["convnet3_w8_in", "convnet3_w8_none", "vit_p4_d1_w32"])
def test_a_teacher_without_batchnorm_cannot_recover(arch, tiny_data):
    teacher = create_model(arch, 10, 1, 28).eval()
    with pytest.raises(ValueError, match="has no BatchNorm2d layer: recovery matches BatchNorm statistics"):
        recover(teacher, tiny_data[0].info, RECOVER, progress=False)
