"""The errors that end a program in one line (common/entry.py catches them by type). Nothing
here imports TensorFlow, so that a program that never loads it starts as fast as before."""


class DataError(Exception):
    """Data missing, unreachable, truncated or corrupt; the message names the file or flag."""


class RunDirError(Exception):
    """A run folder that cannot be used as asked: reported in one line."""


class CheckpointMismatchError(Exception):
    """A checkpoint of another model (or not a checkpoint): reported in one line."""


class CheckpointWriteError(Exception):
    """A checkpoint that could not be written: reported in one line."""


class NothingToDo(Exception):
    """A finished run rerun with the same step count: its one line, exit status 0."""


class DivergedError(Exception):
    """A NaN or Inf loss (or variable): training stops before anything else is saved."""

    def __init__(self, step, what):
        super().__init__('Model diverged with %s at step %d' % (what, step))
        self.step = step


# The errors that end a program in one line, 'error: ...', exit status 1.
ONE_LINE = (DataError, RunDirError, CheckpointMismatchError, CheckpointWriteError)
