"""What the cache holds, and how training uses it: boundary tensors per stage, and a StageSource.

`boundary_features` computes (through a FeatureCache) the tensors at a stage's boundary for every
augmented view of the training images and for the validation images; `cached_stages` hands
search.recipe.train a StageSource (`CachedStages`) that trains each stage's own open layers and the
head on them.
"""

from __future__ import annotations

import numpy as np

from search.cache.matmul import matmul_layers
from search.cache.store import FeatureCache
from search.cache.surgery import boundary, build_bridge, build_cached_model, build_prefix
from search.recipe.config import TrainConfig
from search.recipe.data import Data
from search.recipe.feed import array_stream
from search.recipe.model import build_augment
from search.recipe.network import Network
from search.recipe.train import StageFit, compile_program


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

    weights = cache.weights_id(config.weights)
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

    val, *views = cache.get_many(  # workers filling together split the entries between them
        [({**common, "split": "val"}, lambda: run(None, None))]
        + [({**common, "split": "train", "view": v, "aug": aug},
            lambda v=v: run(lambda: augment_view(config, data.x_train, v), v))
           for v in range(cache.views)])
    return views, val


class CachedStages:
    """A StageSource (search.recipe.train) on `cache`: each stage trains only its own open layers
    and the head, on the cached boundary tensors of its own depth. Those are filled once per
    study from the images at depth max(cache_depth, unfreeze_depth), and each shallower boundary
    from that one. A stage's model is compiled once per network and depth (with XLA when the
    cache says so) and kept on the network for every later run."""

    def __init__(self, cache: FeatureCache, cache_depth: int = 0):
        self.cache, self.cache_depth = cache, cache_depth

    def begin(self, network: Network, config: TrainConfig, data: Data):
        deepest = max(self.cache_depth, config.unfreeze_depth)
        xla = self.cache.xla

        def stage(depth: int) -> StageFit:
            views, val = boundary_features(config, data, network.base, depth, self.cache, deepest)

            def build():
                model, _ = build_cached_model(config, network.base, network.train_head, depth)
                return compile_program(model, network, depth, config, xla), matmul_layers(model)
            model, taps = network.program(("cached", config.weight_decay, xla, depth), build)
            for layer in taps:  # the centre taps from the network's (reset or trained) kernels
                layer.load()
            return StageFit(model, views, val,
                            sync=(lambda: [layer.write_back() for layer in taps]) if taps else None)
        return stage


def cached_stages(cache: FeatureCache | None, cache_depth: int = 0) -> CachedStages | None:
    """CachedStages on `cache`, or None (the live recipe) without one."""
    return None if cache is None else CachedStages(cache, cache_depth)
