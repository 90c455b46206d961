"""The per-method cost model `cda plan` prints for the GPU presets (cda.gpu_cost): FLOPs counted from
the models, hours from the stated peak and utilization."""
import math

from cda import gpu_cost
from cda.config import preset
from cda.plan import Shape

IN1K = Shape(1000, 3, 224)


def test_forward_flops_are_counted_from_the_model():
    # ResNet-18 at 224 px: 1.82 GMACs, the standard figure, i.e. 3.6 GFLOPs
    assert math.isclose(gpu_cost.forward_flops("resnet18", IN1K), 3.63e9, rel_tol=0.01)
    assert gpu_cost.forward_flops("resnet50", IN1K) > 2 * gpu_cost.forward_flops("resnet18", IN1K)


def test_hours_follow_the_stated_model():
    cfg = preset("paper", ipcs=[50], students=["resnet18"])
    f = gpu_cost.forward_flops("resnet18", IN1K)
    hours = gpu_cost.method_hours(cfg, "cda", IN1K)
    tf32 = gpu_cost.PEAK_FLOPS["tf32"] * gpu_cost.UTILIZATION * 3600
    bf16 = gpu_cost.PEAK_FLOPS["bf16"] * gpu_cost.UTILIZATION * 3600
    assert math.isclose(hours["recovery"], 50_000 * 4000 * 2 * f / tf32, rel_tol=1e-9)  # fp32 recovery: TF32
    assert math.isclose(hours["relabel"], 50_000 * 300 * f / tf32, rel_tol=1e-9)  # stored labels, fp32 teacher
    assert math.isclose(hours["students"], 50_000 * 300 * 3 * f / bf16, rel_tol=1e-9)  # bf16 autocast
    random = gpu_cost.method_hours(cfg, "random", IN1K)
    assert random["recovery"] == 0 and math.isclose(random["students"], hours["students"])
    cudd = gpu_cost.method_hours(cfg, "cudd", IN1K)
    assert cudd["recovery"] > 2 * hours["recovery"] * 0.99  # a student forward and backward as well
    assert cudd["students"] > hours["students"]  # the curriculum students


def test_plan_prints_each_methods_cost_for_gpu_presets_only(capsys, tmp_path):
    from cda.cli import main

    main(["plan", "--preset", "tiny_imagenet", "--set", "ipcs=[50]", "--set", "students=[resnet18_modified]",
          "--set", "methods=[random,sre2l,cda,cudd]", "--set", f"cache_dir={tmp_path}"])
    out = capsys.readouterr().out
    assert "ESTIMATES until a GPU measures them" in out and "utilization" in out
    for method in ("random", "sre2l", "cda", "cudd"):
        assert f"\n  {method:8} " in out
    assert "teacher: " in out and " h, shared by every method" in out  # Tiny's teacher is trained here
    main(["plan", "--preset", "smoke", "--set", f"cache_dir={tmp_path}"])
    assert "ESTIMATES" not in capsys.readouterr().out  # CPU presets: no GPU table
