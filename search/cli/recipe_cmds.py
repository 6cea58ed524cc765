"""Commands on one config or one model: `train`, `evaluate`, `predict`."""

from __future__ import annotations

import argparse
from pathlib import Path

from search.cli.flags import add_data_flags, add_study_flags
from search.options import RunOptions
from search.recipe.config import SEED_CONFIG, TrainConfig


def add_parsers(sub) -> None:
    p = sub.add_parser("train", help="train one config and write a run folder")
    p.add_argument("--config", default=str(SEED_CONFIG),
                   help="YAML/JSON config (default: configs/seed.yaml, the seed recipe)")
    p.add_argument("--test", action="store_true",
                   help="also evaluate on the test split (never used for any choice)")
    p.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2),
                   help="Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch")
    add_data_flags(p)

    p = sub.add_parser("evaluate", help="accuracy, per-class accuracy and confusion matrix of a "
                       "saved model on a source's test split")
    p.add_argument("--model", help="a .keras file (default: the study's best_model.keras)")
    p.add_argument("--data-dir", help="local CIFAR-10 folder (default: Keras' download)")
    add_study_flags(p)

    p = sub.add_parser("predict", help="class and probability for each image")
    p.add_argument("--model", required=True, help="a .keras file (model.keras or best_model.keras)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (.png/.jpg)")


def cmd_train(args: argparse.Namespace) -> int:
    from search.cache.features import cached_stages
    from search.files import write_json
    from search.recipe.data import load_source, make_data
    from search.recipe.evaluate import evaluate, format_metrics
    from search.recipe.model import check_weights
    from search.recipe.run_dir import new_run_dir, save_model, write_history, write_start
    from search.recipe.train import train

    opts = RunOptions.from_namespace(args)
    config = TrainConfig.load(args.config)
    config = TrainConfig.from_dict({**config.to_dict(), **opts.overrides()},
                                   source=f"{args.config} with the command line's overrides")
    check_weights(config.weights)  # before anything is written or trained
    source = load_source(opts.data_dir)
    data = make_data(source, config.train_samples, config.val_samples, config.split_seed)
    cache = opts.make_cache()
    if cache is not None:  # before anything is written
        cache.check_room(config.image_size, len(data.x_train) * cache.views + len(data.x_val),
                         config.n_stages + 1)
    print(f"data: {source.layout} layout at {source.location}: {len(source.x_train)} training, "
          f"{len(source.x_test)} test images of {source.x_train.shape[1:]}")
    run_dir = new_run_dir(opts.results_dir, Path(args.config).stem)
    write_start(run_dir, config, None, (data.train_idx, data.val_idx))
    print(f"run folder: {run_dir}")
    print(f"training {len(data.x_train)} images, validating on {len(data.x_val)}; "
          f"stages open {config.stage_depths()} layers")
    result = train(config, data, verbose=args.verbose, stages=cached_stages(cache))
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
    from search.errors import DataError
    from search.jobs import SearchOptions, data_identity
    from search.recipe.data import load_source
    from search.recipe.evaluate import (
        check_model,
        evaluate,
        format_metrics,
        load_model,
        read_classes,
    )

    path, study = args.model, None
    if path is None:
        from search.tuning.storage import open_study

        opts = SearchOptions.from_namespace(args)
        study = open_study(opts.study_name, opts.storage_url())
        path = opts.study_dir / "best_model.keras"
    model = load_model(path)
    source = load_source(args.data_dir)
    if study is not None:
        from search.tuning.identity import check_data

        check_data(study, data_identity(source))
    check_model(model, source.class_names)
    names = read_classes(path, model.output_shape[-1])
    if names is not None and names != tuple(source.class_names):
        raise DataError(f"the model was trained on classes {list(names)} but "
                        f"{source.location} has {list(source.class_names)}; evaluate on the data "
                        "the model was trained for.")
    print(format_metrics(evaluate(model, source.x_test, source.y_test, source.class_names)))
    return 0


def class_names_for(model_path: str | Path, n: int) -> tuple[str, ...]:
    from search.recipe.data import CIFAR10_CLASSES
    from search.recipe.evaluate import read_classes

    names = read_classes(model_path, n)
    if names is not None:
        return names
    return CIFAR10_CLASSES if n == 10 else tuple(str(i) for i in range(n))


def cmd_predict(args: argparse.Namespace) -> int:
    from search.recipe.evaluate import check_model, load_model, predict

    model = load_model(args.model)
    check_model(model)
    names = class_names_for(args.model, model.output_shape[-1])
    for path, name, prob in predict(model, args.images, names):
        print(f"{path}\t{name}\t{prob:.4f}")
    return 0


HANDLERS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict}
