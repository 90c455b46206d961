"""Command line: `cda squeeze|recover|relabel|evaluate|run` over the same RunConfig as the notebooks,
`cda study NAME` for one paper table or figure, `cda notebooks` to execute every notebook with
papermill, `cda figures` to redraw every figure from the saved results, and `cda cache verify|repair`
to check the cache.

Every subcommand starts from a preset (`--preset cpu`), optionally a YAML file (`--config`), then
dotted overrides (`--set recover.lr=0.1 --set ipcs=[1,10]`, `--device`, `--data-root`).

Where results go: `run`, `study`, `notebooks` and `figures` write under an output root laid out like
the project (results/main/<tag>/ for `run`, results/<study>/<preset>.csv, figures/<preset>/; `run --publish`
writes the main table's one home, its study's results/cda_table2_main_results/). By default
that root is runs/ in the project folder (git ignores it), so the committed results/ and figures/
change only with --publish. A run with overrides writes <preset>-<hash> beside the preset's own.
Teachers, distilled sets and students are cached in the project's .cache/cda whichever the root
($CDA_CACHE_DIR moves it); --output-root DIR puts results, figures and cache under DIR.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import traceback
from dataclasses import replace
from pathlib import Path

from .config import PRESETS, ConfigError, RunConfig, apply_overrides, parse_override, preset, to_dict


def _overrides(args) -> dict:
    """The dotted config fields of --config, then --set, then --device, --data-root, --dataset."""
    overrides = {}
    if args.config:
        import yaml

        data = yaml.safe_load(Path(args.config).read_text()) or {}
        overrides.update(_flatten(data))
    overrides.update(parse_override(s) for s in args.set)
    if getattr(args, "protocol", None):
        overrides["protocol"] = args.protocol
    if args.device:
        overrides["device"] = args.device
    if args.data_root:
        overrides["data.root"] = args.data_root
    if args.dataset:
        overrides["data.name"] = args.dataset
    return overrides


def _load_config(args) -> RunConfig:
    from .methods import check_run

    cfg = preset(args.preset, **_overrides(args))
    check_run(cfg)  # method names are the registry's to check
    return cfg


def _flatten(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _output_root(args) -> Path:
    """Where `run`, `study`, `notebooks` and `figures` write: the project folder with --publish,
    --output-root, else <project>/runs."""
    from .notebooks import output_root

    return output_root(args.publish, args.output_root or None)  # the notebooks' rule too


def _common(p: argparse.ArgumentParser) -> None:
    """The flags every subcommand takes."""
    p.add_argument("--preset", default="cpu", help=f"one of {', '.join(PRESETS)} (default cpu)")
    p.add_argument("--config", help="YAML file of config fields (nested sections)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. recover.iterations=200 (repeatable)")
    p.add_argument("--device", help="cpu, cuda or cuda:N")
    p.add_argument("--data-root", help="the dataset's folder")
    p.add_argument("--dataset", help="dataset name (fashion_mnist, digits, cifar10, imagenet1k, ...)")
    p.add_argument("--protocol", help="train the students under a fixed protocol (cda.config.protocols, e.g. kd) "
                                      "instead of the preset's tuned recipe; results go to <preset>-<protocol>")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def _step(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--overwrite", action="store_true",
                   help="replace an output made with another config (otherwise an error)")


def _plan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--classes", type=int, help="the dataset's class count, where its data is not at hand")
    p.add_argument("--channels", type=int, help="image channels (default: the dataset's)")
    p.add_argument("--size", type=int, help="image side in pixels (default: the dataset's)")
    p.add_argument("--rate", type=float, help="recovery image-iterations per second, to project the time")
    p.add_argument("--measure", action="store_true",
                   help="time a few recovery iterations on the device (random teacher weights) for the rate")
def _outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--publish", action="store_true",
                   help="write the project's results/ and figures/ (the committed results); default: runs/")
    p.add_argument("--output-root", help="write results/, figures/ and the cache under this folder instead of runs/")


def build_parser() -> argparse.ArgumentParser:
    from .tuning import DEFAULT_STAGES, TUNE_STAGES, TuneConfig  # `cda tune`'s defaults

    parser = argparse.ArgumentParser(prog="cda", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="the whole pipeline: teacher, every method and IPC, table and figures")
    _common(p)
    _outputs(p)
    p.add_argument("--print-config", action="store_true", help="print the resolved config and stop")
    p.add_argument("--plan", action="store_true", help="print the plan (disk, memory, work) and stop")
    _plan_options(p)

    p = sub.add_parser("plan", help="what a run will need (disk, device memory, work), without running it")
    _common(p)
    _plan_options(p)

    p = sub.add_parser("squeeze", help="train a teacher and save its checkpoint")
    _step(p)
    p.add_argument("--out", required=True, help="checkpoint path (.pt)")

    p = sub.add_parser("recover", help="synthesize a distilled set with a teacher")
    _step(p)
    p.add_argument("--teacher", required=True, help="teacher checkpoint from `cda squeeze`")
    p.add_argument("--method", default="cda", help="a registered method: sre2l, cda, cudd (settings in cudd.*), "
                   "nearest_mean, random (see cda.methods.list_methods())")
    p.add_argument("--ipc", type=int, required=True)
    p.add_argument("--out", required=True, help="output folder (distilled.pt and images/ of PNGs)")

    p = sub.add_parser("relabel", help="store FKD-style soft labels for a distilled set")
    _step(p)
    p.add_argument("--teacher", required=True)
    p.add_argument("--distilled", required=True, help="folder from `cda recover`")
    p.add_argument("--out", required=True, help="labels folder")
    p.add_argument("--topk", type=int, default=0,
                   help="compact labels: keep the k largest logits per view (0: every logit, FKD-style)")
    p.add_argument("--quant", default="int8", choices=["int8", "fp16"], help="compact labels: value encoding")
    p.add_argument("--label-epochs", type=int, default=0,
                   help="label only this many epochs; training cycles through them (0: every epoch)")

    p = sub.add_parser("evaluate", help="train a student on a distilled set and test it")
    _step(p)
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--distilled", help="folder from `cda recover`")
    given.add_argument("--images", help="a released image tree (official <root>/new000/class000_id000.jpg, or any "
                                        "ImageFolder of the set)")
    p.add_argument("--teacher", help="teacher checkpoint (online soft labels): cda's; with --images also a "
                                     "torchvision state dict or timm checkpoint (name it with --arch), or the "
                                     "official Tiny-ImageNet checkpoint")
    p.add_argument("--arch", help="--images: the architecture of a --teacher that does not say its own")
    p.add_argument("--labels", help="stored labels folder from `cda relabel`; with --images, the official FKD "
                                    "label folder (its stored views are replayed)")
    p.add_argument("--method", help="train the students of this method's recipe (RunConfig.eval_for), e.g. cda")

    p = sub.add_parser("study", help="one paper table or figure (what its notebook runs), without Jupyter")
    p.add_argument("name", help="study name, e.g. cda_ablation_scheduler (see `cda study list`)")
    _common(p)
    _outputs(p)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a study parameter, e.g. milestones=[0.25,0.5,1.0] (repeatable)")

    p = sub.add_parser("tune", help="choose the student protocol, the recovery settings and CUDD's weights on the "
                                    "validation split")
    _common(p)
    _outputs(p)
    p.add_argument("--ipc", type=int, default=TuneConfig.ipc, help=f"the IPC of the sets tuned on (default {TuneConfig.ipc})")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"seeds per grid point (seeds 0..n-1; default {len(TuneConfig.seeds)}, with --convergence 3)")
    p.add_argument("--stages", nargs="+", choices=TUNE_STAGES, default=list(DEFAULT_STAGES),
                   help=f"the stages to run (default {' '.join(DEFAULT_STAGES)}; 'fast': one-cycle, EMA, label "
                        f"smoothing, larger lr, batch size; another choice writes results/tuning/<preset>-<stages>.csv)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a TuneConfig field, e.g. 'protocol=[[temperature,[1.0,4.0]]]' (repeatable)")
    p.add_argument("--convergence", action="store_true",
                   help="instead of the grid: validation top-1 of the preset's students at doubling budgets, and the "
                        "first budget whose doubling gains less than the seed std (results/tuning/<preset>-convergence)")
    p.add_argument("--budgets", type=int, nargs="+", default=[100, 200, 400, 800, 1600],
                   help="--convergence: the doubling epochs (default 100 200 400 800 1600)")
    p.add_argument("--method", help="--convergence: the set's method (default the baseline, random real images)")
    p.add_argument("--variant", nargs="+", action="append", default=[], metavar="NAME_OR_KEY=VALUE",
                   help="--convergence: a second row set, NAME then eval fields, e.g. --variant fast "
                        "schedule=onecycle ema_decay=0.999 (repeatable)")

    p = sub.add_parser("verdicts", help="the verdict on each paper claim from the saved results (computes nothing)")
    _common(p)
    _outputs(p)

    p = sub.add_parser("notebooks", help="execute every notebook with papermill at a preset")
    _common(p)
    _outputs(p)
    p.add_argument("--only", nargs="+", metavar="NAME", help="just these notebooks")
    p.add_argument("--executed-dir", help="where the executed copies go (default: build/executed)")

    p = sub.add_parser("cache", help="check every cached artifact (verify), or also move the damaged ones aside "
                                     "and record the digests of older ones (repair)")
    p.add_argument("action", choices=("verify", "repair"))
    _common(p)
    _outputs(p)

    p = sub.add_parser("standin", help="write an ImageNet-shaped stand-in dataset made from Fashion-MNIST")
    p.add_argument("--out", required=True, help="folder for train/ and val/ (use it as data.root)")
    p.add_argument("--classes", type=int, default=1000, help="1000 (ImageNet-1K), 200 (Tiny), 10450 (21K-P)")
    p.add_argument("--size", type=int, default=224, help="image side in pixels (Tiny-ImageNet: 64)")
    p.add_argument("--train-per-class", type=int, default=2)
    p.add_argument("--val-per-class", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("figures", help="redraw every figure from the saved results, computing nothing")
    _common(p)
    _outputs(p)
    p.add_argument("--only", nargs="+", metavar="NAME")
    return parser


def _paper_companion(args, root: Path) -> int:
    """The study, notebooks and figures subcommands."""
    from . import notebooks, studies
    from .paths import run_tag

    overrides = _overrides(args)
    preset(args.preset, **overrides)  # a bad field is a clear error before anything runs
    if args.command == "study":
        if args.name == "list":
            for name, st in studies.STUDIES.items():
                print(f"{name:32} {st.title}")
            return 0
        params = dict(parse_override(s) for s in args.param)
        result = studies.run(args.name, args.preset, overrides, root, not args.no_progress, **params)
        # the tables of this run, read from the CSV it just wrote
        for caption, table in studies.tables(result.name, result.df, root):
            print(f"\n{caption}\n\n{table.to_markdown()}")
        print(f"\nresults: {result.csv}")
    elif args.command == "notebooks":
        notebooks.run_notebooks(args.preset, args.only, executed_dir=args.executed_dir, output_root=root,
                                progress=not args.no_progress, overrides=overrides)
    else:
        tag = run_tag(args.preset, overrides)
        if not notebooks.redraw_all(tag, args.only, root):
            raise FileNotFoundError(f"no results named {tag!r} under {root / 'results'} to redraw; run `cda study` "
                                    f"or `cda notebooks` first, or pass --publish for the committed results")
    return 0


def _tune(args, root: Path) -> int:
    """`cda tune`: the grid's rows in results/tuning/<tag>.csv, its figures, and the winners as --set
    overrides to pass to `cda run` (or to write into the preset)."""
    from . import interval_figures
    from .paths import cache_dir, figures_dir, results_path, run_tag
    from .tuning import DEFAULT_STAGES, FAST_GRID, TUNE_STAGES, TuneConfig, best_mean, sensitivity, tune

    overrides = _overrides(args)
    cfg = apply_overrides(preset(args.preset), overrides)
    params = {k: _tuples(v) for k, v in (parse_override(s) for s in args.param)}
    skipped = {stage: () for stage in TUNE_STAGES if stage not in args.stages}
    asked = {"fast": FAST_GRID} if "fast" in args.stages else {}  # off unless asked for
    seeds = len(TuneConfig.seeds) if args.seeds is None else args.seeds
    tc = TuneConfig(**{"ipc": args.ipc, "seeds": tuple(range(seeds)), **asked, **params, **skipped})
    # another IPC or a subset of the stages writes beside the full tuning, never over it
    tag = (run_tag(args.preset, overrides, params) + (f"-ipc{args.ipc}" if args.ipc != TuneConfig.ipc else "")
           + ("-" + "-".join(args.stages) if set(args.stages) != set(DEFAULT_STAGES) else ""))
    csv = results_path("tuning", tag, root)
    csv.parent.mkdir(parents=True, exist_ok=True)
    cfg = replace(cfg, cache_dir=cache_dir(cfg.cache_dir, root))
    out = tune(cfg, tc, csv, progress=not args.no_progress)
    df = out["rows"]
    winners = {(r.stage, r.knob): r.value_text for r in df[df.winner].itertuples()}
    figs = figures_dir(tag, root)
    interval_figures.save_figure(interval_figures.tuning_figure(best_mean(df), winners), figs / "tuning_grid")
    sens = sensitivity(df)
    if len(sens):  # CUDD's weights alone have no CDA - SRe2L difference to show
        interval_figures.save_figure(interval_figures.sensitivity_figure(sens), figs / "tuning_sensitivity")
    sets = " ".join(f"--set {k}={_yaml(v)}" for k, v in out["overrides"].items())
    print(f"\nresults: {csv}\nfigures: {figs}/tuning_grid.png, tuning_sensitivity.png")
    print(f"tuned settings: {sets or '(the preset as it is)'}")
    if out["at_edge"]:
        print(f"best at the grid's edge (accuracy may still rise beyond it): {', '.join(out['at_edge'])}")
    return 0


def _convergence(args, root: Path) -> int:
    """`cda tune --convergence`: results/tuning/<tag>-convergence.{csv,json} and its figure."""
    from . import methods
    from .convergence import convergence, convergence_figure
    from .paths import cache_dir, figures_dir, results_path, run_tag
    from .plots import save_figure

    overrides = _overrides(args)
    cfg = apply_overrides(preset(args.preset), overrides)
    variants = {}
    for name, *fields in args.variant:
        if "=" in name or not fields:
            raise ConfigError(f"--variant {' '.join([name, *fields])}: give a name, then EvalConfig fields as KEY=VALUE")
        variants[name] = {k: _tuples(v) for k, v in (parse_override(f) for f in fields)}
    tag = run_tag(args.preset, overrides) + "-convergence"
    csv = results_path("tuning", tag, root)
    csv.parent.mkdir(parents=True, exist_ok=True)
    cfg = replace(cfg, cache_dir=cache_dir(cfg.cache_dir, root))
    method = args.method or methods.baseline()
    out = convergence(cfg, method, args.ipc, tuple(range(3 if args.seeds is None else args.seeds)),
                      tuple(args.budgets), variants, csv, progress=not args.no_progress)
    fig = convergence_figure(out["table"], out["verdicts"],
                             title=f"{tag}: {method} at IPC {args.ipc}, {len(set(out['rows'].seed))} seeds")
    figs = figures_dir(tag, root)
    save_figure(fig, figs / "convergence")
    print(out["table"].to_markdown(index=False, floatfmt=".2f"))
    for name, v in out["verdicts"].items():
        print(f"{name}: {v['why']}")
    print(f"\nresults: {csv}\nfigure: {figs}/convergence.png")
    return 0


def _verdicts(args, root: Path) -> int:
    """`cda verdicts`: results/verdicts/<tag>.csv and figures/<tag>/verdicts.png from the saved results."""
    from . import interval_figures
    from .notebooks import build_cost
    from .paths import figures_dir, run_tag
    from .studies import all_claims
    from .verdicts import by_claim, protocol_verdicts, verdict_table

    tag = run_tag(args.preset, _overrides(args))
    table = verdict_table(all_claims(), root / "results", tag)
    if table["n_seeds"].fillna(0).gt(0).any():
        interval_figures.save_figure(interval_figures.verdict_figure(table, title=f"Verdicts at {tag}"),
                                   figures_dir(tag, root) / "verdicts")
    shown = table[["id", "cell", "ours", "n_seeds", "verdict", "results_commit"]]
    print(shown.to_markdown(index=False))
    print("\nper claim, its cells' verdicts:\n")
    print(by_claim(table).drop(columns=["claim", "study"]).to_markdown(index=False))
    both = protocol_verdicts(all_claims(), root / "results", tag)
    if both is not None:  # some study was also built under a fixed student protocol (--protocol)
        print(f"\nunder each student protocol ({root / 'results' / 'verdicts' / (tag + '-protocols.csv')}):\n")
        print(both.drop(columns=["paper", "claim", "study"]).to_markdown(index=False))
    cost = build_cost(tag, root=root)
    if cost["studies"]:
        print(f"\ncomputing the {len(cost['studies'])} studies' results from an empty cache: "
              f"{cost['seconds'] / 60:.1f} min of build time over {cost['artifacts']} artifacts, each counted "
              f"once (" + ", ".join(f"{k} {v / 60:.1f} min" for k, v in cost["by_kind"].items()) + ")")
    print(f"\nresults: {root / 'results' / 'verdicts' / (tag + '.csv')}")
    return 0


def _tuples(value):
    """YAML lists to tuples, as the frozen configs hold them."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _yaml(value) -> str:
    return "[" + ",".join(f"{v:g}" for v in value) + "]" if isinstance(value, tuple) else str(value)


def _standin(args) -> int:
    from .standin import make_standin

    try:
        meta = make_standin(args.out, args.classes, args.size, args.train_per_class, args.val_per_class, args.seed,
                            progress=not args.no_progress)
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"cda standin: error: {err}", file=sys.stderr)
        return 1
    print(f"stand-in: {args.classes} classes x ({args.train_per_class} train + {args.val_per_class} val) images "
          f"of {args.size} px, {meta['bytes'] / 1e6:.1f} MB in {meta['seconds']:.0f}s -> {args.out} "
          f"(use --set data.root={args.out})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "standin":
        return _standin(args)
    hint = "" if args.debug else " (--debug shows the traceback)"
    try:
        root = _output_root(args) if hasattr(args, "publish") else None
        if args.command in ("study", "notebooks", "figures"):
            return _paper_companion(args, root)
        if args.command == "tune":
            return _convergence(args, root) if args.convergence else _tune(args, root)
        if args.command == "verdicts":
            return _verdicts(args, root)
        try:
            cfg = _load_config(args)
        except (ConfigError, OSError) as err:
            if args.debug:
                traceback.print_exc()
            print(f"cda: configuration error: {err}{hint}", file=sys.stderr)
            return 2
        if args.command in ("run", "cache"):
            cfg = _run_outputs(args, cfg, root)
        if args.command in ("squeeze", "recover", "evaluate") and cfg.speed == "auto":
            cfg = _speed(cfg)
        from .runtime import Runtime

        with Runtime(cfg.device).applied():  # TF32 on CUDA for this command only
            return _COMMANDS[args.command](args, cfg, not args.no_progress)
    except (ConfigError, FileNotFoundError, ValueError, KeyError, RuntimeError) as err:
        # RuntimeError includes torch's errors, CUDA out-of-memory among them
        if args.debug:
            traceback.print_exc()
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"cda {args.command}: error: {message}{hint}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1


def _run_outputs(args, cfg: RunConfig, root: Path) -> RunConfig:
    """`cda run` writes <root>/results/main/<preset>[-<hash>]/ unless --set out_dir says where; the cache
    goes where cda.paths.cache_dir says, as for the studies."""
    overrides = _overrides(args)
    if "out_dir" not in overrides:
        from .paths import run_tag
        from .studies import MAIN_TABLE

        where = MAIN_TABLE if args.publish else f"main/{run_tag(args.preset, overrides)}"  # published: the study's
        cfg = replace(cfg, out_dir=str(root / "results" / where))
    from .paths import cache_dir

    return replace(cfg, cache_dir=cache_dir(cfg.cache_dir, root))


def _speed(cfg: RunConfig) -> RunConfig:
    """speed="auto" for a single command: measured (once) in a plain run; under torchrun the ranks
    would time each other, so the stages' settings stay as written there."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        print("cda: speed=auto is measured in single-process runs only; under torchrun the stages' own "
              "settings are used (run one command without torchrun first to see the choice)", file=sys.stderr)
        return replace(cfg, speed="fixed")
    from .data import info_for
    from .speed import resolve

    return replace(cfg, speeds=resolve(cfg, info_for(cfg.data)), speed="fixed")  # the runtime's, measured


def _plan(args, cfg: RunConfig, progress: bool) -> int:
    from .plan import InsufficientDiskError, dataset_shape, make_plan, measure_rate

    shape = dataset_shape(cfg, getattr(args, "classes", None), getattr(args, "channels", None),
                          getattr(args, "size", None))
    plan = make_plan(cfg, shape)
    rate = getattr(args, "rate", None)
    if getattr(args, "measure", False):
        measured = measure_rate(cfg, shape)
        rate = measured["recover_images_per_s"]
        peak = f", peak {measured['peak_bytes'] / 1e9:.2f} GB" if "peak_bytes" in measured else ""
        print(f"measured on {cfg.device}: {rate:.1f} recovery image-iterations/s in steps of "
              f"{measured['images_per_step']} images{peak}")
    print(plan.render({"recover_images_per_s": rate} if rate else None))
    if cfg.device.startswith("cuda"):  # the GPU presets: each method's cost on an H100/H200 (estimates)
        from .gpu_cost import render

        print(render(cfg, shape))
    try:
        plan.check_disk(cfg.cache_dir)
    except InsufficientDiskError as err:
        print(f"\ncda: {err}", file=sys.stderr)
        return 1
    print(f"\nThe disk at {cfg.cache_dir} can hold it.")
    return 0


def _run(args, cfg: RunConfig, progress: bool) -> int:
    if args.print_config:
        import yaml

        print(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return 0
    if args.plan:
        return _plan(args, cfg, progress)
    if args.publish:  # the main table has one home: its study's results and figures
        from .studies import MAIN_TABLE, project_root
        from .studies import run as run_study

        run_study(MAIN_TABLE, args.preset, _overrides(args), project_root(), progress, methods=cfg.methods)
        return 0
    from .pipeline import run

    run(cfg, progress=progress)
    return 0


def _cache(args, cfg: RunConfig, progress: bool) -> int:
    """`cda cache verify|repair` on the cache a `cda run` with the same flags uses; 1 if verify finds damage."""
    from .cache_check import check_cache

    counts = check_cache(cfg.cache_dir, repair=args.action == "repair")
    return 1 if counts["damaged"] and args.action == "verify" else 0


def _claim(folder: Path, made_by: dict, overwrite: bool) -> None:
    """Refuse to reuse an output folder made with another config, unless asked to overwrite."""
    from .cache import read_json, write_json

    stamp = folder / "cda-config.json"
    if stamp.is_file() and read_json(stamp) != made_by:
        if not overwrite:
            raise ValueError(f"{folder} holds the output of another config; pass --overwrite to replace it, "
                             f"or choose another --out")
        shutil.rmtree(folder)
    write_json(made_by, stamp)


def _squeeze(args, cfg: RunConfig, progress: bool) -> int:
    from .distributed import barrier, cleanup, init_from_env
    from .squeeze import squeeze

    # Under torchrun: DistributedDataParallel; rank 0 keeps the progress files and writes the checkpoint.
    rank, world, device = init_from_env(cfg.device)  # (0, 1, device) in a plain run
    try:
        work = Path(args.out).with_suffix(".progress")
        if rank == 0:
            _claim(work, {"data": to_dict(cfg.data), "squeeze": to_dict(cfg.squeeze)}, args.overwrite)
        barrier()
        _, meta = squeeze(cfg.data, cfg.squeeze, device, args.out if rank == 0 else None, progress and rank == 0,
                          progress_dir=work, speed=cfg.speeds.teacher)
        barrier()
    finally:
        cleanup()
    if rank == 0:
        shutil.rmtree(work)
        on = f", on {world} processes" if world > 1 else ""
        print(f"teacher {cfg.squeeze.arch} on {cfg.data.name}: top-1 {meta['metrics']['top1']:.2f}%{on} -> {args.out}")
    return 0


def _teacher(path, cfg: RunConfig):
    from .checkpoint import load_checkpoint
    from .data import info_for

    return load_checkpoint(path, info_for(cfg.data), cfg.device)


def _recover(args, cfg: RunConfig, progress: bool) -> int:
    """Make one method's set with a saved teacher (cda.methods). Under `torchrun --nproc_per_node=N`
    each rank makes its share of the groups and rank 0 writes the assembled set (the same images as
    one process with the same batching)."""
    from . import distributed, methods
    from .data import load_split

    rank, world, device = distributed.init_from_env(cfg.device)  # (0, 1, device) in a plain run
    try:
        cfg = replace(cfg, device=device)
        method = methods.get(args.method)
        train = load_split(cfg.data, train=True)
        teacher, _ = _teacher(args.teacher, cfg)
        options = methods.options_for(cfg, args.method, args.ipc)
        out = Path(args.out)
        made_by = {"teacher": str(Path(args.teacher).resolve()), "method": args.method, "ipc": args.ipc,
                   "options": to_dict(options)}
        if rank == 0:
            _claim(out, made_by, args.overwrite)
        distributed.barrier()
        d = method.make(methods.Inputs(teacher, train, device, progress and rank == 0, folder=out,
                                       speeds=cfg.speeds), options)
        d.meta["method"] = args.method
        distributed.barrier()
        if rank == 0:
            d.save(out, train.info)
            methods.clear_progress(out)  # checkpoints and finished steps: all in distilled.pt now
            where = f" on {world} processes" if world > 1 else ""
            print(f"{args.method}: {len(d.images)} images in {d.meta.get('seconds', 0):.0f}s{where} -> {args.out}")
        distributed.barrier()
    finally:
        distributed.cleanup()
    return 0


def _relabel(args, cfg: RunConfig, progress: bool) -> int:
    from .config import RelabelConfig
    from .data import info_for
    from .distributed import cleanup, init_from_env
    from .recover import Distilled
    from .relabel import relabel

    # Under torchrun each rank writes every world_size-th epoch into the same folder.
    rank, world, device = init_from_env(cfg.device)  # (0, 1, device) in a plain run
    try:
        teacher, _ = _teacher(args.teacher, replace(cfg, device=device))
        d = Distilled.load(args.distilled)
        rl = RelabelConfig(aug=cfg.eval.aug, topk=args.topk, quant=args.quant, fill_temperature=cfg.eval.temperature,
                           label_epochs=args.label_epochs)
        labels = relabel(teacher, d.images, info_for(cfg.data), rl, args.out, device, progress and rank == 0,
                         rank=rank, world_size=world)
        if rank == 0:
            print(f"labels for {len(d.images)} images x {cfg.eval.aug.epochs} epochs: {labels.nbytes() / 1e6:.1f} MB "
                  f"({labels.bytes_per_view():.1f} B per image-epoch) -> {args.out}")
    finally:
        cleanup()
    return 0


def _evaluate(args, cfg: RunConfig, progress: bool) -> int:
    from .contracts import check_image_set
    from .data import load_split
    from .distributed import cleanup, init_from_env
    from .recover import Distilled
    from .relabel import StoredLabels
    from .student import evaluate

    e = cfg.eval_for(args.method) if args.method else cfg.eval
    teacher = stored = None
    if args.images:  # a set made outside cda: cda.released reads and checks it
        from .data import info_for
        from .released import released_inputs

        d, e, teacher, stored = released_inputs(args.images, info_for(cfg.data), e, args.labels, args.teacher,
                                                args.arch, cfg.device, progress)
    elif args.arch:
        print("cda evaluate: --arch names a foreign --teacher's architecture; it goes with --images", file=sys.stderr)
        return 2
    elif args.labels:
        d = Distilled.load(args.distilled)
        e, stored = replace(e, labels="stored"), StoredLabels(args.labels)
    elif args.teacher:
        d = Distilled.load(args.distilled)
        teacher, _ = _teacher(args.teacher, cfg)
    elif e.labels != "hard":
        print("cda evaluate: soft labels need --teacher or --labels (or --set eval.labels=hard)", file=sys.stderr)
        return 2
    else:
        d = Distilled.load(args.distilled)
    test = load_split(cfg.data, train=False)
    check_image_set(d.images, d.labels, test.info, f"distilled set {args.distilled}")
    # Under torchrun: DistributedDataParallel, each rank training on its part of every batch.
    rank, world, device = init_from_env(cfg.device)  # (0, 1, device) in a plain run
    try:
        metrics = evaluate(d, test, e, teacher, stored, device, progress and rank == 0, speed=cfg.speeds.student)
    finally:
        cleanup()
    if rank == 0:
        on = f", on {world} processes" if world > 1 else ""
        print(f"student {e.arch}: top-1 {metrics['top1']:.2f}%  top-5 {metrics['top5']:.2f}%  "
              f"({metrics['seconds']:.0f}s{on})")
    return 0


_COMMANDS = {"run": _run, "plan": _plan, "squeeze": _squeeze, "recover": _recover, "relabel": _relabel, "evaluate": _evaluate,
             "cache": _cache}

if __name__ == "__main__":
    sys.exit(main())
