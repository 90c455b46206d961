"""Every registered method, and one registered here, through the whole path: `cda plan`, `cda run`
at the smoke preset, `cda evaluate` on its set, the tables and the figures. Whatever these steps
need to know about a method comes from its registry entry, so a method the code has never seen
must pass as the built-in ones do."""
from dataclasses import dataclass, replace

import matplotlib
import pytest
import torch

from cda import methods, studies
from cda.cli import main
from cda.config import apply_overrides, parse_override, preset
from cda.plan import make_plan
from cda.recover import Distilled
from cda.results import read_results


@dataclass(frozen=True)
class NoisyMeansOptions:
    ipc: int
    sigma: float = 30.0  # pixel noise around each class mean, in 0-255 units
    seed: int = 0


def _noisy_means(inputs: methods.Inputs, o: NoisyMeansOptions) -> Distilled:
    """The toy: IPC copies of each class's mean image, each with its own Gaussian noise."""
    split = inputs.train
    g = torch.Generator().manual_seed(o.seed)
    images, labels = [], []
    for c in range(split.info.num_classes):
        index = torch.nonzero(split.labels == c).flatten()
        mean = split.take(index.numpy()).float().mean(0)
        noise = o.sigma * torch.randn((o.ipc, *mean.shape), generator=g)
        images.append((mean + noise).clamp(0, 255).round().to(torch.uint8))
        labels.append(torch.full((o.ipc,), c))
    return Distilled(torch.cat(images), torch.cat(labels), {"ipc": o.ipc})


TOY = methods.Method("noisy_means", "Noisy class means", lambda run, ipc: NoisyMeansOptions(ipc, seed=run.recover.seed),
                     _noisy_means, options_type=NoisyMeansOptions, color="C9")


@pytest.fixture
def every_method(monkeypatch):
    methods.list_methods()  # the built-in entries first
    monkeypatch.setitem(methods.REGISTRY, TOY.name, TOY)
    return methods.list_methods()


@pytest.mark.slow
def test_every_method_goes_through_plan_run_evaluate_tables_and_figures(every_method, tmp_path, capsys):
    names = every_method
    assert {"random", "sre2l", "cda", "cudd", "nearest_mean", "noisy_means"} <= set(names)
    out, cache = tmp_path / "out", tmp_path / "cache"
    # one IPC, one seed, few epochs: the path, not the numbers
    sets = [f"methods=[{','.join(names)}]", "ipcs=[1]", "eval_seeds=[0]", "full_data=false", "squeeze.epochs=1",
            "recover.iterations=2", "eval.aug.epochs=1", f"cache_dir={cache}", f"out_dir={out}"]
    common = ["--preset", "smoke", "--no-progress", *(a for s in sets for a in ("--set", s))]
    cfg = apply_overrides(preset("smoke"), dict(parse_override(s) for s in sets))

    # the plan: synthesis work exactly for the methods whose entries synthesize
    assert main(["plan", *common]) == 0
    assert "recovery image-iterations" in capsys.readouterr().out
    for name in names:
        plan = make_plan(replace(cfg, methods=(name,)), measure=False)
        synthesizes = methods.get(name).synthesis is not None
        assert (plan.work["recovery image-iterations"] > 0) == synthesizes, name
        assert isinstance(methods.options_for(cfg, name, 1), methods.get(name).options_type), name

    # the run: one student per method, its table row and its figure line in the entry's label and colour
    assert main(["run", *common]) == 0
    df = read_results(out / "results.csv")
    top1 = df[(df.metric == "top1") & df.ipc.notna()]
    assert list(dict.fromkeys(top1.method)) == names and top1.value.between(0, 100).all()
    table = (out / "table.md").read_text()
    assert all(f"| {name} " in table for name in names)
    for name in ("accuracy_vs_ipc", "distilled_images"):
        assert (out / f"{name}.png").stat().st_size > 1000
    fig = studies.get("cda_table2_main_results").draw(df, {})["accuracy_vs_ipc"]
    handles, labels = fig.axes[0].get_legend_handles_labels()
    lines = dict(zip(labels, handles))
    for name in names:
        entry = methods.get(name)
        line = lines[entry.label]
        line = line[0] if isinstance(line, tuple) else line  # an errorbar's handle: (line, caps, bars)
        assert matplotlib.colors.same_color(line.get_color(), entry.color), name
    for caption, t in studies.get("cda_table2_main_results").tables(df, None):
        if caption.startswith("Top-1 (%) with student"):
            assert list(t.index[:len(names)]) == names

    # evaluate: each method's set, saved as `cda recover` would, trained on by `cda evaluate`
    from cda.pipeline import Workspace

    ws = Workspace(cfg, progress=False, log=lambda s: None)  # the run's: its sets come from the cache
    hard = ["--preset", "smoke", "--no-progress", "--set", "eval.aug.epochs=1", "--set", "eval.labels=hard"]
    for name in names:
        folder = tmp_path / "sets" / name
        ws.distilled(name, 1).save(folder, ws.info)
        capsys.readouterr()
        assert main(["evaluate", *hard, "--distilled", str(folder)]) == 0, name
        assert "top-1" in capsys.readouterr().out
