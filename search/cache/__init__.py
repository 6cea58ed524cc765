"""The exact cache of ResNet50's frozen part. Builds on search.recipe; knows no search backend.

    store.py     FeatureCache: keyed entries in memory and on disk (memory-mapped), atomic writes
    surgery.py   cutting the base at a stage's boundary: prefix, bridge, the stage's own model
    matmul.py    convolutions that are matrix products, run as one (MatmulConv, write_back)
    features.py  boundary tensors per stage through the store; CachedStages, the StageSource
"""
