"""Tracking: what a search tells the tools that watch it (MLflow, TensorBoard, a user's own
callbacks), in the search process, from the events its runs already send.

    base.py                 SearchCallback (the hooks) and SearchInfo
    callbacks.py            --track specs, the trackers they open, Callbacks (the fan-out)
    mlflow_tracker.py       --track mlflow=URI: a parent run per study, a child run per trial
    tensorboard_tracker.py  --track tensorboard=DIR: a run per trial with its HParams
"""
