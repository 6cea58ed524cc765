"""The recipe: one training run as a function of one frozen config. Imports no search backend.

    config.py     TrainConfig, the one frozen dataclass that reaches training
    batches.py    CIFAR-10's python batch files, through an unpickler of their real layout only
    data.py       the three CIFAR-10 sources, the seeded stratified split
    synthetic.py  tiny CIFAR-shaped data with signal, for tests and benchmarks
    schedule.py   plan(config, budget) -> [StagePlan]: the staged schedule as pure functions
    model.py      the network's parts: preprocessing, weights, augmentation, open layers per stage
    network.py    one network per structure, re-initialised in place per run; Networks, WeightsBank
    feed.py       the training batch stream and pipelines handed to Keras
    train.py      train(config, data) -> TrainResult: a plan run on a network; StageSource
    evaluate.py   test-set metrics, loading a saved model, single-image prediction
    run_dir.py    the run folder: config, command, split, history, curves, model
"""
