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


def tensorflow_words(error):
    """A TensorFlow error's own line, to quote in a one-line error (display only: nothing is
    decided on it): the last unindented line of its message. Before it, a graph's error has
    the traceback of the node that failed; after it, an indented '[[{{node ...}}]]'."""
    lines = [line for line in getattr(error, 'message', str(error)).splitlines()
             if line.strip() and not line[0].isspace()]
    return lines[-1].strip() if lines else type(error).__name__


# The errors that end a program in one line, 'error: ...', exit status 1.
ONE_LINE = (DataError, RunDirError, CheckpointMismatchError, CheckpointWriteError)
