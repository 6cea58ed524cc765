"""What the cache holds, and how training uses it: boundary tensors per stage, and a StageSource.

`boundary_features` computes (through a FeatureCache) the tensors at a stage's boundary for every
augmented view of the training images and for the validation images; `cached_stages` hands
search.recipe.train a StageSource that trains each stage's own open layers and the head on them.
"""

from __future__ import annotations

import numpy as np

from search.cache.matmul import write_back
from search.cache.programs import head_programs
from search.cache.store import FeatureCache, weights_id
from search.cache.surgery import boundary, build_bridge, build_cached_model, build_prefix
from search.recipe.config import TrainConfig
from search.recipe.data import Data
from search.recipe.feed import array_stream
from search.recipe.model import HEAD, build_augment
from search.recipe.train import Stage


def augment_view(config: TrainConfig, x: np.ndarray, view: int, batch: int = 256) -> np.ndarray:
    """View `view` of every image: Keras' augmentation layers with a seed of their own per view,
    applied in fixed batches, so views are deterministic given (config.seed, view)."""
    aug = build_augment(config.replace(seed=config.seed * 1000 + 101 * (view + 1)))
    if not aug.layers:
        return x.astype("float32")
    out = [np.asarray(aug(x[i:i + batch].astype("float32"), training=True))
           for i in range(0, len(x), batch)]
    return np.concatenate(out)


def predict_boundary(prefix, x, batch: int = 256) -> list[np.ndarray]:
    """The boundary tensors that `prefix` (a prefix or a bridge) makes from x (images, or a list
    of boundary arrays), always as a list (one array per tensor)."""
    x = [np.asarray(a, "float32") for a in x] if isinstance(x, list) else x.astype("float32")
    out = prefix.predict(array_stream(x, batch_size=batch), verbose=0)
    return out if isinstance(out, list) else [out]


def boundary_features(config: TrainConfig, data: Data, base, depth: int, cache: FeatureCache,
                      source_depth: int | None = None):
    """Prefix outputs at the boundary of the top `depth` layers for the training views and the
    validation images, through the cache.

    With `source_depth` > depth, an entry that misses is computed from the (cached) boundary at
    `source_depth` through the frozen layers in between (search.cache.surgery.build_bridge) rather than
    from the images: a study fills one deep cache from the images, then each stage's shallower
    boundary from it, for a fraction of the cost. The key records the source.

    Returns (train_views, val): train_views[v][j] is input j of view v, val[j] input j."""
    def names(d):
        return [t._keras_history.operation.name for t in boundary(base, d)]

    weights = weights_id(config.weights)
    if weights == "none":  # random weights: drawn from the seed
        weights = f"none:seed={config.seed}"
    common = {"data": data.fingerprint(), "weights": weights,
              "image_size": config.image_size, "boundary": names(depth)}
    deep = source_depth is not None and source_depth > depth
    if deep:
        common["from"] = names(source_depth)
    aug = {"seed": config.seed, "flip": config.aug_flip, "translate": config.aug_translate,
           "rotate": config.aug_rotate, "zoom": config.aug_zoom}
    built = {}

    def run(images, view):
        """One entry's arrays, from the deeper boundary when there is one, else from images."""
        if deep:
            if "bridge" not in built:
                built["bridge"] = build_bridge(base, source_depth, depth)
                built["source"] = boundary_features(config, data, base, source_depth, cache)
            train, val = built["source"]
            return predict_boundary(built["bridge"], val if view is None else train[view])
        if "prefix" not in built:
            built["prefix"] = build_prefix(config, base, data.x_train.shape[1:], depth)
        return predict_boundary(built["prefix"], images() if view is not None else data.x_val)

    val = cache.get({**common, "split": "val"}, lambda: run(None, None))
    views = [cache.get({**common, "split": "train", "view": v, "aug": aug},
                       lambda v=v: run(lambda: augment_view(config, data.x_train, v), v))
             for v in range(cache.views)]
    return views, val


def cached_stages(cache: FeatureCache | None, cache_depth: int = 0, reuse: bool = True):
    """A StageSource for search.recipe.train.train on `cache` (None: the live recipe).

    Each stage trains only its own open layers and the head, on the cached boundary tensors of its
    own depth: those are filled once per study from the images at depth max(cache_depth,
    unfreeze_depth), and each shallower boundary from that one. With `reuse`, each stage runs on
    this process's compiled program for its structure (search.cache.programs), traced once and
    kept for later trials; without, every stage builds and compiles its own model."""
    if cache is None:
        return None

    def source(config: TrainConfig, data: Data, model, base):
        deepest = max(cache_depth, config.unfreeze_depth)
        head = model.get_layer(HEAD)
        progs = head_programs(config, data.num_classes, cache.xla) if reuse else None
        if progs is not None:
            progs.begin(model, config)

        def stage(depth: int) -> Stage:
            views, val = boundary_features(config, data, base, depth, cache, deepest)
            if progs is None:
                fit_model, _ = build_cached_model(config, base, head, depth)
                return Stage(fit_model, views, val, sync=lambda: write_back(fit_model))
            fit_model = progs.model(config, depth)
            return Stage(fit_model, views, val,
                         sync=lambda: progs.store(fit_model, model, base, depth),
                         prepare=lambda lr: progs.prepare(fit_model, depth, lr, model, base))
        return stage
    return source
