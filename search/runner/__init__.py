"""The trial runner: one training run as typed events, in this process or in a worker process.

    events.py   what a run tells whoever drives it (EpochEnd, StageEnd) and how it ends
    trial.py    TrialRunner: a process's networks, its stage source and the cache; runs a config
    worker.py   WorkerRunner: the same, in a reused child process, through a pipe
    pool.py     RunnerPool: N workers side by side (--jobs), make_runner, Ctrl-C that ends them
"""
