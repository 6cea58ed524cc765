"""The recipe: one training run as a function of one frozen config. Imports no search backend.

    config.py     TrainConfig, the one frozen dataclass that reaches training
    data.py       the three CIFAR-10 sources, the seeded stratified split
    synthetic.py  tiny CIFAR-shaped data with signal, for tests and benchmarks
    model.py      ResNet50 base + head, which layers are open at each stage
    train.py      train(config, data) -> TrainResult; stages fed by a StageSource
    evaluate.py   test-set metrics, loading a saved model, single-image prediction
    run_dir.py    the run folder: config, command, split, history, curves, model
"""
