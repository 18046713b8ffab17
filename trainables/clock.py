"""``train.time_limit``: how many epochs a trial trains when the clock, not a count, decides.

With a limit the trial's ``train.epochs`` is its plan; after every epoch the trial re-plans the epochs
that end within the limit at the pace it has measured so far, as a plain script that follows the clock
does, and its schedule is stretched or shortened to end there (``trainables.optim.set_total_steps``).
The limit counts from the first epoch's start to the last epoch's end, including the validations between;
the last validation (with TTA), the cost measurement and the writing of the trial come after it.
Pure arithmetic: the loop (``trainables/epochs.py``) measures and passes the seconds in.
"""

from __future__ import annotations

MOST = 1000  # epochs at most, whatever the clock allows (a tiny set on a fast machine)
RECENT = 3  # the pace of an epoch: the mean of the last few (the first is slower, and a load may come and go)


def epoch_pace(epoch_seconds: list[float]) -> float:
    """Seconds an epoch takes now: the mean of the last ``RECENT`` epochs' training time."""
    if not epoch_seconds:
        raise ValueError("an epoch's pace needs at least one epoch trained")
    recent = epoch_seconds[-RECENT:]
    return sum(recent) / len(recent)


def validations_between(done: int, epochs: int, val_every: int) -> int:
    """Validations after epoch ``done`` and before the last of ``epochs`` (the last's is not in the limit)."""
    return sum(1 for e in range(done + 1, epochs) if e % val_every == 0)


def epochs_in_time(done: int, seconds_left: float, epoch_s: float, val_s: float, val_every: int, most: int | None = None) -> int:
    """The epochs to train in all, ``done`` already trained: the most (up to ``most``, default ``MOST``) whose
    remaining epochs and the validations between them fit ``seconds_left``; never fewer than ``done``
    (none fits: stop now)."""
    most = MOST if most is None else most
    if done < 1:
        raise ValueError(f"re-plan after at least one epoch, got done={done}")
    if epoch_s <= 0:
        raise ValueError(f"an epoch's pace must be > 0 seconds, got {epoch_s}")
    epochs = done
    while epochs < most:
        more = epochs + 1
        need = (more - done) * epoch_s + validations_between(done, more, val_every) * val_s
        if need > seconds_left:
            break
        epochs = more
    return epochs
