"""Progress of a search: on a terminal a live bar (trials done of N, ETA, best so far, each
running trial's stage, epoch and val accuracy); without one (logs, containers, CI) a plain line
every `every` seconds. Driven by the same events as the trackers, in the search process."""

from __future__ import annotations

import math
import os
import sys
import threading
import time

from optuna.trial import TrialState

from search.tracking.base import SearchCallback


def duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Progress(SearchCallback):
    def __init__(self, trials: int | None, timeout: float | None = None,
                 epoch_budget: int | None = None, every: float = 60.0, out=None,
                 terminal: bool | None = None, best: tuple[float, int] | None = None):
        """best: the study's best (value, number) before this search, on a resume."""
        self.out = out or sys.stderr
        self.terminal = self.out.isatty() if terminal is None else terminal
        self.trials, self.timeout, self.epoch_budget, self.every = trials, timeout, epoch_budget, every
        self.t0 = self.last = time.monotonic()
        self.done = self.epochs = 0
        self.best = best
        self.running: dict[int, str] = {}
        self.lock = threading.Lock()
        self.bar = None
        if self.terminal:
            from tqdm import tqdm

            try:  # a terminal of no size (a fresh pty, `docker run -t`) would draw nothing
                sized = os.get_terminal_size(self.out.fileno()).columns > 0
            except (OSError, ValueError, AttributeError):
                sized = False
            self.bar = tqdm(total=trials or None, file=self.out, unit="trial", dynamic_ncols=sized,
                            ncols=None if sized else 160, nrows=None if sized else 40,
                            bar_format="{n_fmt}/{total_fmt} trials |{bar:20}| {desc}")

    def eta(self) -> float | None:
        """Seconds left: the least of what the trial count, --timeout and --epoch-budget say."""
        elapsed = time.monotonic() - self.t0
        left = []
        if self.trials and self.done:
            left.append(elapsed / self.done * (self.trials - self.done))
        if self.timeout:
            left.append(self.timeout - elapsed)
        if self.epoch_budget and self.epochs:
            left.append(elapsed / self.epochs * (self.epoch_budget - self.epochs))
        return max(min(left), 0.0) if left else None

    def text(self) -> str:
        eta = self.eta()
        parts = [f"ETA {duration(eta) if eta is not None else '?'}",
                 f"best {self.best[0]:.4f} (#{self.best[1]})" if self.best else "best -"]
        parts += [self.running[n] for n in sorted(self.running)]
        return " | ".join(parts)

    def line(self) -> str:
        total = f"/{self.trials}" if self.trials else ""
        return (f"progress: {self.done}{total} trials, {duration(time.monotonic() - self.t0)} "
                f"elapsed | {self.text()}")

    def _show(self) -> None:
        """Redraw the bar; without one, a line once `every` seconds have passed since the last."""
        if self.bar is not None:
            self.bar.set_description_str(self.text(), refresh=True)
            return
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            print(self.line(), file=self.out, flush=True)

    def trial_started(self, number, params):
        with self.lock:
            self.running[number] = f"trial {number}: starting"
            self._show()

    def epoch_ended(self, number, event):
        acc = event.logs.get("val_accuracy", math.nan)
        with self.lock:
            self.epochs += 1
            self.running[number] = (f"trial {number}: stage {event.stage}, epoch {event.epoch + 1}"
                                    f", val {acc:.4f}")
            self._show()

    def trial_finished(self, study, trial):
        with self.lock:
            self.done += 1
            self.running.pop(trial.number, None)
            if trial.state == TrialState.COMPLETE and trial.value is not None and (
                    self.best is None or trial.value > self.best[0]):
                self.best = (trial.value, trial.number)
            if self.bar is not None:
                self.bar.update(1)
            self._show()

    def close(self):
        with self.lock:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
