"""`--track tensorboard=DIR`: one TensorBoard run per trial under DIR/<study>/trial_NNNN, with its
params as an HParams summary and per-epoch scalars (val_accuracy, loss ..., `stage`) at step =
global epoch, then `value` (its best val accuracy) as the HParams metric; DIR/<study>/final holds
the test metrics. `tensorboard --logdir DIR` shows them (the HPARAMS tab compares trials).
Written through tf.summary on the CPU, from the search process."""

from __future__ import annotations

import threading
from pathlib import Path

from search.errors import UserError
from search.tracking.base import SearchCallback, epoch_metrics, test_figures


class TensorBoardTracker(SearchCallback):
    def __init__(self, logdir: str):
        self.root = Path(logdir).expanduser()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"--track tensorboard={logdir}: cannot make that folder "
                            f"({e.strerror}); give a folder you can write.") from None
        self.study_root = self.root
        self.writers: dict[int, object] = {}
        self.lock = threading.Lock()  # tf.summary's default writer is per thread; ours are not

    def search_started(self, info):
        self.study_root = self.root / info.study_name

    def _write(self, writer, fn) -> None:
        import tensorflow as tf

        with self.lock, tf.device("/CPU:0"), writer.as_default():
            fn(tf)
            writer.flush()

    def trial_started(self, number, params):
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp

        with self.lock:
            writer = tf.summary.create_file_writer(str(self.study_root / f"trial_{number:04d}"))
            self.writers[number] = writer
        self._write(writer, lambda tf: hp.hparams(dict(params), trial_id=f"trial {number}"))

    def epoch_ended(self, number, event):
        writer = self.writers.get(number)
        if writer is None:
            return
        def scalars(tf):
            for k, v in epoch_metrics(event).items():
                tf.summary.scalar(k, v, step=event.epoch)
        self._write(writer, scalars)

    def trial_finished(self, study, trial):
        with self.lock:
            writer = self.writers.pop(trial.number, None)
        if writer is None:
            return
        if trial.value is not None:
            self._write(writer, lambda tf: tf.summary.scalar("value", float(trial.value), step=0))
        self._write(writer, lambda tf: tf.summary.text(
            "state", f"{trial.state.name} {trial.user_attrs.get('pruned') or ''}".strip(), step=0))
        writer.close()

    def search_finalized(self, test, files):
        import tensorflow as tf

        writer = tf.summary.create_file_writer(str(self.study_root / "final"))
        per_seed, summary, per_class = test_figures(test)

        def final(tf):
            for k, a in enumerate(per_seed):
                tf.summary.scalar("test_accuracy", a, step=k)
            for key in ("test_accuracy_mean", "test_accuracy_std"):
                if key in summary:
                    tf.summary.scalar(key, summary[key], step=0)
            for name, v in per_class.items():
                tf.summary.scalar(f"test_accuracy_per_class/{name}", v, step=0)
            best = files.get("best_config.yaml")
            if best is not None and Path(best).is_file():
                tf.summary.text("best_config", "```\n" + Path(best).read_text() + "\n```", step=0)
        self._write(writer, final)
        writer.close()

    def close(self):
        with self.lock:
            writers, self.writers = list(self.writers.values()), {}
        for w in writers:
            w.close()
