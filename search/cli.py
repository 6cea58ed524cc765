"""The command line behind run_search.py. Thin: parse, resolve, call, print.

    python run_search.py [search] --trials 50        the search (default command)
    python run_search.py train --config FILE         train one config
    python run_search.py export|evaluate|predict|dashboard
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search.config import SEED_CONFIG, TrainConfig
from search.errors import UserError

COMMANDS = ("search", "train", "export", "evaluate", "predict", "dashboard", "bench", "report",
            "finalize", "compare")


def add_data_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data and backbone (override the config)")
    g.add_argument("--data-dir", help="local CIFAR-10: a folder with cifar-10-batches-py/ or "
                   "train/<class>/ + test/<class>/ images (default: Keras' download)")
    g.add_argument("--weights", help="ResNet50 weights: imagenet (Keras' download, cached in "
                   "~/.keras/models), none, or a path to a notop .h5 file")
    g.add_argument("--train-samples", type=int, help="images taken from the training pool, "
                   "validation included (default 10000)")
    g.add_argument("--val-samples", type=int, help="of those, held out for validation (default 2000)")
    g.add_argument("--image-size", type=int, help="input size in pixels; images are resized to it "
                   "(default 32)")
    g.add_argument("--seed", type=int, help="seed for init, augmentation, dropout and shuffling")
    g.add_argument("--split-seed", type=int, help="seed for the train/val split")
    p.add_argument("--results-dir", default="results", help="where outputs go (default: results)")
    g = p.add_argument_group("cache of the frozen part of ResNet50")
    g.add_argument("--no-cache", action="store_true", help="run the full network on live, freshly "
                   "augmented images every epoch (exact recipe, much slower on a CPU)")
    g.add_argument("--aug-views", type=int, default=4, help="augmented views per training image "
                   "pushed through the frozen part once; each epoch draws one (default 4)")
    g.add_argument("--cache-dir", help="on-disk cache shared by runs, resumes and workers "
                   "(default: <results-dir>/cache; 'none' keeps it in memory only)")
    g.add_argument("--cache-mem", type=float, default=4096,
                   help="MiB of newly computed cache held in process memory (default 4096); beyond "
                        "it, and whenever read back from disk, entries are memory-mapped")
    g.add_argument("--cache-dtype", choices=("float32", "float16"), default="float32",
                   help="storage type of cached tensors (default float32)")


def make_cache(args: argparse.Namespace):
    """The FeatureCache the flags ask for, or None with --no-cache."""
    from search.cache import FeatureCache
    from search.errors import UserError

    if args.no_cache:
        return None
    if args.aug_views < 1 or args.cache_mem < 0:
        raise UserError("--aug-views must be at least 1 and --cache-mem 0 or more.")
    d = args.cache_dir or str(Path(args.results_dir) / "cache")
    return FeatureCache(None if d.lower() == "none" else d, args.cache_mem, args.aug_views,
                        args.cache_dtype)


def overrides(args: argparse.Namespace) -> dict:
    keys = ("weights", "train_samples", "val_samples", "image_size", "seed", "split_seed")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def build_parser() -> argparse.ArgumentParser:
    from search import bench, compare, study_cli

    parser = argparse.ArgumentParser(
        prog="run_search.py",
        description="Hyperparameter search for ResNet50 transfer learning on CIFAR-10. "
        "Without a command, runs `search`.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    study_cli.add_search_parser(sub, add_data_flags)

    p = sub.add_parser("train", help="train one config and write a run folder")
    p.add_argument("--config", default=str(SEED_CONFIG),
                   help="YAML/JSON config (default: configs/seed.yaml, the seed recipe)")
    p.add_argument("--test", action="store_true",
                   help="also evaluate on the test split (never used for any choice)")
    p.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2),
                   help="Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch")
    add_data_flags(p)

    study_cli.add_other_parsers(sub, add_data_flags)
    bench.add_parser(sub, add_data_flags)
    compare.add_parser(sub, add_data_flags)

    p = sub.add_parser("evaluate", help="accuracy, per-class accuracy and confusion matrix of a "
                       "saved model on a source's test split")
    p.add_argument("--model", help="a .keras file (default: the study's best_model.keras)")
    p.add_argument("--data-dir", help="local CIFAR-10 folder (default: Keras' download)")
    study_cli.add_study_flags(p)

    p = sub.add_parser("predict", help="class and probability for each image")
    p.add_argument("--model", required=True, help="a .keras file (model.keras or best_model.keras)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (.png/.jpg)")
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from search.data import load_source, make_data
    from search.evaluate import evaluate, format_metrics
    from search.model import check_weights
    from search.outputs import new_run_dir, save_model, write_history, write_json, write_start
    from search.train import train

    config = TrainConfig.load(args.config)
    config = TrainConfig.from_dict({**config.to_dict(), **overrides(args)}, source=args.config)
    check_weights(config.weights)  # before anything is written or trained
    source = load_source(args.data_dir)
    print(f"data: {source.layout} layout at {source.location}: {len(source.x_train)} training, "
          f"{len(source.x_test)} test images of {source.x_train.shape[1:]}")
    data = make_data(source, config.train_samples, config.val_samples, config.split_seed)
    run_dir = new_run_dir(args.results_dir, Path(args.config).stem)
    write_start(run_dir, config, None, (data.train_idx, data.val_idx))
    print(f"run folder: {run_dir}")
    print(f"training {len(data.x_train)} images, validating on {len(data.x_val)}; "
          f"stages open {config.stage_depths()} layers")
    cache = make_cache(args)
    result = train(config, data, verbose=args.verbose, cache=cache)
    if cache is not None:
        print(f"{cache.summary()}; fill {cache.stats.fill_seconds:.1f}s")
    write_history(run_dir, result.history)
    out = {**result.summary(), "data": data.source, "data_fingerprint": source.fingerprint()}
    if args.test:
        m = evaluate(result.model, data.x_test, data.y_test, data.class_names)
        out["test"] = m
        print(format_metrics(m))
    save_model(result.model, run_dir / "model.keras", data.class_names)
    write_json(run_dir / "metrics.json", out)
    print(f"best val_accuracy {result.val_accuracy:.4f} in {result.seconds:.0f}s; "
          f"outputs in {run_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from search import study_cli
    from search.data import load_source
    from search.evaluate import evaluate, format_metrics, load_model

    path = args.model
    if path is None:
        from search.study import load_existing, open_storage

        url = study_cli.storage_url(args)
        load_existing(args.study_name, open_storage(url, create=False), url)
        path = Path(args.results_dir) / args.study_name / "best_model.keras"
    model = load_model(path)
    source = load_source(args.data_dir)
    print(format_metrics(evaluate(model, source.x_test, source.y_test, source.class_names)))
    return 0


def class_names_for(model_path: str | Path, n: int) -> tuple[str, ...]:
    import json

    from search.data import CIFAR10_CLASSES

    f = Path(model_path).with_name("classes.json")
    if f.is_file():
        return tuple(json.loads(f.read_text()))
    return CIFAR10_CLASSES if n == 10 else tuple(str(i) for i in range(n))


def cmd_predict(args: argparse.Namespace) -> int:
    from search.evaluate import load_model, predict

    model = load_model(args.model)
    names = class_names_for(args.model, model.output_shape[-1])
    for path, name, prob in predict(model, args.images, names):
        print(f"{path}\t{name}\t{prob:.4f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from search import bench, compare, study_cli

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["search", *argv]
    args = build_parser().parse_args(argv)
    handlers = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
                "bench": bench.cmd_bench, "compare": compare.cmd_compare, **study_cli.HANDLERS}
    try:
        return handlers[args.command](args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
