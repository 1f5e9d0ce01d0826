"""The run folder and its checkpoints, in one place: find and resolve the latest checkpoint,
save and rotate, refuse another model's checkpoint, one writer per folder.

A run folder (--train_dir, --log_dir, --model_dir, --eval_dir, a sweep's trial, a report
row) can be copied, moved and rerun:

- Savers write the `checkpoint` state file with paths relative to the folder (`saver`), and
  a writer starting on a folder rewrites an older state file's absolute paths the same way
  (`open_writer`), so that continuing a copy rotates the copy's files, never the original's.
- Readers resolve the state against the folder they were given (`latest`): a path that
  points elsewhere (a folder written by an earlier version and then moved or copied) means
  the file of the same name inside the folder; when that is not there, one line names both.
- One writer per folder: a lock file naming the host and pid (`LOCK_FILE`), held with
  flock, so that a holder killed with -9 leaves a lock the next writer takes over.
- A checkpoint that cannot be written (disk full, file too large) ends in one line naming
  the last complete checkpoint, which the state still names (`CheckpointWriteError`).

Nothing here writes or deletes a file outside the folder it was given.
"""

import contextlib
import datetime
import fcntl
import glob
import json
import os
import re
import shutil
import socket
import sys

from google.protobuf import text_format
import numpy as np
import tensorflow as tf
from tensorflow.python.training import checkpoint_state_pb2

from common import errors
from common.errors import CheckpointMismatchError
from common.errors import CheckpointWriteError
from common.errors import NothingToDo
from common.errors import RunDirError

STATE_FILE = 'checkpoint'  # TensorFlow's checkpoint state file
LOCK_FILE = '.lock'        # the writer's lock: {"host", "pid", "command", "since"}


# ---------------------------------------------------------------------------------------------
# Folder flags
# ---------------------------------------------------------------------------------------------

def check_folder(path, flag):
    """Raises RunDirError when the folder flag --<flag>=path names an existing file."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunDirError('--%s=%s is a file, not a folder' % (flag, path))


def make_folder(path, flag):
    """Creates the folder --<flag>=path (and its parents) for writing. Raises RunDirError, in
    one line naming the flag, the path and the reason, when it is a file or cannot be created
    or written."""
    check_folder(path, flag)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise RunDirError('--%s=%s: cannot create the folder (%s)'
                          % (flag, path, e.strerror or e)) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise RunDirError('--%s=%s: the folder is not writable' % (flag, path))


# ---------------------------------------------------------------------------------------------
# Finding the latest checkpoint
# ---------------------------------------------------------------------------------------------

def _exists(ckpt_path):
    return os.path.exists(ckpt_path + '.index')


def _state(run_dir):
    """The folder's CheckpointState, paths as the file holds them, or None when it has no
    state file."""
    path = os.path.join(run_dir, STATE_FILE)
    if not os.path.isfile(path):
        return None
    state = checkpoint_state_pb2.CheckpointState()
    try:
        with open(path) as f:
            text_format.Merge(f.read(), state)
    except (OSError, UnicodeDecodeError, text_format.ParseError) as e:
        raise RunDirError('%s: not a checkpoint state file (%s)' % (path, e)) from None
    return state


def resolve(run_dir, ckpt_path):
    """The checkpoint ckpt_path (as a state file names it: relative, or absolute and perhaps
    elsewhere) as the file of the same name inside run_dir; None when that is not there."""
    inside = os.path.join(run_dir, os.path.basename(ckpt_path))
    if _exists(inside):
        return inside
    return None


def latest(run_dir, where=None):
    """The latest checkpoint of run_dir as a path inside run_dir, or None when it has none.

    Raises RunDirError, in one line naming both paths, when the state file names a checkpoint
    that is not in the folder. where: how the error names the folder (default run_dir)."""
    state = _state(run_dir) if os.path.isdir(run_dir) else None
    if state is None or not state.model_checkpoint_path:
        return None
    found = resolve(run_dir, state.model_checkpoint_path)
    if found is None:
        raise RunDirError(
            '%s names the checkpoint %s, which is not in %s (no %s there)'
            % (os.path.join(run_dir, STATE_FILE), state.model_checkpoint_path,
               where or run_dir, os.path.join(run_dir, os.path.basename(
                   state.model_checkpoint_path)) + '.index'))
    return found


def all_checkpoints(run_dir):
    """Every checkpoint the state of run_dir keeps that is in the folder, oldest first (paths
    inside run_dir): what a resumed saver goes on rotating."""
    state = _state(run_dir) if os.path.isdir(run_dir) else None
    if state is None:
        return []
    found = (resolve(run_dir, p) for p in state.all_model_checkpoint_paths)
    return [p for p in found if p is not None]


def step_of(ckpt_path):
    """The global step a checkpoint was saved at: from its name, else from its variables."""
    match = re.search(r'-(\d+)$', ckpt_path)
    if match:
        return int(match.group(1))
    return int(tf.train.load_variable(ckpt_path, 'global_step'))


def check_done(run_dir, steps, steps_flag):
    """Raises NothingToDo when run_dir's latest checkpoint is at step `steps` or later
    (--<steps_flag>=steps), or when steps is 0: rerunning a finished run writes nothing. A
    folder whose newest run was another script's is left to the model checks that follow."""
    ckpt = latest(run_dir) if os.path.isdir(run_dir) else None
    if ckpt:
        record, _ = latest_saved_run(run_dir)
        if record and record.get('script') != os.path.basename(sys.argv[0]):
            return
    step = step_of(ckpt) if ckpt else 0
    if step >= steps:
        raise NothingToDo('already at step %d of --%s=%d: nothing to do'
                          % (step, steps_flag, steps))


def _rewrite_state(run_dir):
    """Rewrites run_dir's state file with paths relative to the folder (each resolved inside
    it; checkpoints no longer there dropped), when it holds any other path."""
    state = _state(run_dir)
    if state is None or not state.model_checkpoint_path:
        return
    names = [state.model_checkpoint_path] + list(state.all_model_checkpoint_paths)
    if all(os.path.basename(p) == p for p in names):
        return
    newest = latest(run_dir)  # raises when it is not in the folder
    kept, stamps = [], []
    for i, path in enumerate(state.all_model_checkpoint_paths):
        found = resolve(run_dir, path)
        if found is not None:
            kept.append(os.path.basename(found))
            if i < len(state.all_model_checkpoint_timestamps):
                stamps.append(state.all_model_checkpoint_timestamps[i])
    if os.path.basename(newest) not in kept:
        kept.append(os.path.basename(newest))
    tf.compat.v1.train.update_checkpoint_state(
        os.path.abspath(run_dir), os.path.basename(newest), kept,
        all_model_checkpoint_timestamps=stamps if len(stamps) == len(kept) else None,
        last_preserved_timestamp=state.last_preserved_timestamp or None)


# ---------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------

def _reason(error):
    """What the file system said, from a TensorFlow or OS error ('File too large'; for the
    one-line error only): TensorFlow ends a file error's line with '<file>; <the OS's words>'."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return errors.tensorflow_words(error).rsplit('; ', 1)[-1]


# What a restore may raise that says nothing of the checkpoint.
_CLUSTER_ERRORS = (tf.errors.AbortedError, tf.errors.UnavailableError, tf.errors.CancelledError,
                   tf.errors.DeadlineExceededError)


class Saver(tf.compat.v1.train.Saver):
    """A Saver that writes the state file's paths relative to the folder, and turns a
    checkpoint it cannot write into a CheckpointWriteError (its partial files removed; the
    state still names the last complete checkpoint)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('save_relative_paths', True)
        super().__init__(*args, **kwargs)

    def save(self, sess, save_path, global_step=None, *args, **kwargs):
        run_dir = os.path.dirname(save_path) or '.'
        name = os.path.basename(save_path)
        if global_step is not None:
            if not isinstance(global_step, (int, np.integer)):
                global_step = tf.compat.v1.train.global_step(sess, global_step)
            name += '-%d' % global_step
        was_there = _exists(os.path.join(run_dir, name))
        try:
            return super().save(sess, save_path, global_step, *args, **kwargs)
        except (tf.errors.OpError, OSError) as e:
            raise _write_error(run_dir, name, was_there, e) from None

    def restore(self, sess, save_path):
        """Saver.restore; a checkpoint it cannot restore is a CheckpointMismatchError in one
        line saying why (restore_problem: read from the checkpoint, not from the error's
        words), naming the run folder's flag when a trainer opened one."""
        try:
            return super().restore(sess, save_path)
        except _CLUSTER_ERRORS:
            raise  # a ps task gone or the session closed: MonitoredSession's to handle
        except tf.errors.OpError as e:
            problem = restore_failure(save_path, _graph_variables(sess.graph), e)
            opened = opened_run_dir()
            hint = '; use --fresh or another --%s' % opened[0] if opened else ''
            raise CheckpointMismatchError('the checkpoint %s cannot be restored into this '
                                          'model (%s)%s' % (save_path, problem, hint)) from None


def _write_error(run_dir, name, was_there, error):
    """The CheckpointWriteError of checkpoint `name` in run_dir, after removing what was
    written of it. was_there: it existed before (then only the temporary files go)."""
    def remove(pattern):
        for path in glob.glob(os.path.join(glob.escape(run_dir), pattern)):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.remove(path)

    kept = latest(run_dir)
    remove(glob.escape(name) + '_temp*')  # a sharded save's folder
    if not was_there and kept is not None and os.path.basename(kept) == name:
        # the state was updated: only the graph file, written last, failed
        remove(glob.escape(name) + '.meta')
        return CheckpointWriteError(
            'cannot write the graph file %s.meta in %s: %s; the checkpoint %s itself is '
            'complete and kept' % (name, run_dir, _reason(error), name))
    if not was_there:
        remove(glob.escape(name) + '.*')
    kept_text = ('the last checkpoint, %s, is kept' % os.path.basename(kept) if kept
                 else 'no earlier checkpoint was written')
    return CheckpointWriteError('cannot write checkpoint %s in %s: %s; %s'
                                % (name, run_dir, _reason(error), kept_text))


def saver(**kwargs):
    """The saver of a run folder's checkpoints (see Saver); kwargs go to tf's Saver."""
    return Saver(**kwargs)


def recover(saver_, run_dir):
    """Lets saver_ go on rotating the checkpoints run_dir's state keeps (inside run_dir)."""
    saver_.recover_last_checkpoints(all_checkpoints(run_dir))


# ---------------------------------------------------------------------------------------------
# One writer per folder
# ---------------------------------------------------------------------------------------------

def _holder_text(text):
    """'pid 123 on host h (python cifar10/train.py, since ...)' from a lock file's text."""
    try:
        holder = json.loads(text)
        return 'pid %s on host %s (%s, since %s)' % (
            holder.get('pid'), holder.get('host'), holder.get('command'), holder.get('since'))
    except (ValueError, AttributeError):
        return 'an unknown holder'


class FolderLock(object):
    """The lock of the one writer of a folder: <folder>/.lock, flock'ed while held, holding
    this host, pid and command. A second writer is refused (RunDirError naming the holder);
    a lock whose holder is gone (killed, rebooted) is taken over, with one line saying so.
    release() removes it."""

    def __init__(self, folder, flag):
        self.folder, self.flag = folder, flag
        self._fd = None

    @property
    def path(self):
        return os.path.join(self.folder, LOCK_FILE)

    def acquire(self):
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                with open(self.path) as f:
                    holder = _holder_text(f.read())
                os.close(fd)
                raise RunDirError('--%s=%s is in use by another writer: %s; one writer per '
                                  'folder (stop it, or give another --%s)'
                                  % (self.flag, self.folder, holder, self.flag)) from None
            try:  # the file we locked is still the one at the path (not a released one)
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = os.read(fd, 4096).decode('utf-8', 'replace').strip()
        if previous:
            print('Taking over the lock of --%s=%s from %s, which is gone'
                  % (self.flag, self.folder, _holder_text(previous)), flush=True)
        me = {'host': socket.gethostname(), 'pid': os.getpid(),
              'command': ' '.join(['python'] + sys.argv),
              'since': datetime.datetime.now().isoformat(timespec='seconds')}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + '\n').encode(), 0)
        self._fd = fd
        return self

    def release(self):
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.remove(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


@contextlib.contextmanager
def hold(folder, flag):
    """The folder --<flag>=folder created (make_folder) and locked (FolderLock) for this
    process, its one writer, until the block ends."""
    make_folder(folder, flag)
    with FolderLock(folder, flag) as lock:
        yield lock


_OPENED = []  # (flag, folder) of each run folder this process opened with open_writer


def opened_run_dir():
    """(flag, folder) of the last run folder this process opened for training (its
    checkpoints), or None: what a one-line error after training stopped names."""
    return _OPENED[-1] if _OPENED else None


@contextlib.contextmanager
def open_writer(run_dir, flag, fresh=False):
    """A trainer's run folder, held for writing: created (RunDirError for a file or a folder
    that cannot be written), locked, with --fresh moved aside first (never deleted; the old
    folder's writer must be gone), and an older state file's paths made relative to it.
    Yields the latest checkpoint to resume from (inside run_dir), or None."""
    check_folder(run_dir, flag)
    if fresh and os.path.isdir(run_dir) and os.listdir(run_dir):
        old = FolderLock(run_dir, flag).acquire()  # its writer must be gone
        try:
            aside = '%s.old-%s' % (run_dir.rstrip('/'),
                                   datetime.datetime.now().strftime('%Y%m%d-%H%M%S'))
            os.rename(run_dir, aside)
            old.folder = aside  # its lock file went aside with it
            make_folder(run_dir, flag)
            lock = FolderLock(run_dir, flag).acquire()
        finally:
            old.release()
        print('Moved the previous %s aside to %s' % (run_dir, aside), flush=True)
    else:
        make_folder(run_dir, flag)
        lock = FolderLock(run_dir, flag).acquire()
    _OPENED.append((flag, run_dir))
    try:
        _rewrite_state(run_dir)
        yield latest(run_dir)
    finally:
        lock.release()


# ---------------------------------------------------------------------------------------------
# Refusing another model's checkpoint
# ---------------------------------------------------------------------------------------------

def _variable_mismatch(reader, variables):
    """The first of `variables` (name -> variable) that a checkpoint's reader does not hold
    as it is, in words ('x is not in it', 'x has shape [2] there, [3] here', 'x is float32
    there, int32 here'), or None."""
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    for name, var in sorted(variables.items()):
        if name not in shapes:
            return '%s is not in it' % name
        if list(shapes[name]) != var.shape.as_list():
            return '%s has shape %s there, %s here' % (name, list(shapes[name]),
                                                       var.shape.as_list())
        if dtypes[name] != var.dtype.base_dtype:
            return '%s is %s there, %s here' % (name, dtypes[name].name,
                                                var.dtype.base_dtype.name)
    return None


def restore_problem(ckpt_path, variables):
    """Why `variables` (name -> variable, as a Saver names them) could not be restored from
    ckpt_path, found by reading the checkpoint itself (never from the words of TensorFlow's
    message): its files gone or unreadable, a variable missing or of another shape or dtype,
    a variable's values unreadable (a damaged data file). None when none of these is found."""
    if not tf.io.gfile.exists(ckpt_path + '.index'):
        return 'its files are gone'
    try:
        reader = tf.train.load_checkpoint(ckpt_path)
    except (tf.errors.OpError, ValueError) as e:
        return 'its .index file cannot be read: %s' % type(e).__name__
    mismatch = _variable_mismatch(reader, variables)
    if mismatch:
        return mismatch
    for name in sorted(variables):
        try:
            reader.get_tensor(name)
        except Exception as e:  # pylint: disable=broad-except  (an OpError, or pybind's
            # IndexError for a data file cut short)
            return 'the values of %s cannot be read: %s' % (name, type(e).__name__)
    return None


def restore_failure(ckpt_path, variables, error):
    """What a failed restore of `variables` from ckpt_path says in its one line:
    restore_problem, else the error's class and the op that failed."""
    op = getattr(error, 'op', None)
    return restore_problem(ckpt_path, variables) or '%s in %s' % (
        type(error).__name__, op.name if op is not None else 'the restore')


def _graph_variables(graph=None):
    """Every global variable of graph (default: the default graph), by its checkpoint name."""
    graph = graph or tf.compat.v1.get_default_graph()
    return {v.op.name: v for v in graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES)}


def check_checkpoint(ckpt_path, variables, model_name, hint=''):
    """Raises CheckpointMismatchError unless the checkpoint holds each of `variables` (a dict
    name -> variable, as its Saver names them) with the variable's shape and dtype; a restore
    would not notice a shape that differs (the variable takes the checkpoint's) and the model
    would fail later, in a matrix product. A checkpoint whose files are gone raises
    NotFoundError."""
    try:
        reader = tf.train.load_checkpoint(ckpt_path)
    except tf.errors.DataLossError as e:
        raise CheckpointMismatchError('the checkpoint %s cannot be read (its .index file: %s)%s'
                                      % (ckpt_path, type(e).__name__, hint)) from None
    mismatch = _variable_mismatch(reader, variables)
    if mismatch:
        raise CheckpointMismatchError('the checkpoint %s does not match %s (%s)%s'
                                      % (ckpt_path, model_name, mismatch, hint))


def check_graph_variables(ckpt_path, flag):
    """check_checkpoint against every global variable of the default graph ('this model'), the
    refusal ending with what to do about the run folder `flag` ('--train_dir'): use --fresh or
    another folder, or, when the folder's newest saved run (not this process's) was another
    script's, continue it with that script."""
    fresh = 'use --fresh or another %s' % flag
    try:
        check_checkpoint(ckpt_path, _graph_variables(), 'this model')
    except CheckpointMismatchError as e:
        record, path = latest_saved_run(os.path.dirname(ckpt_path), exclude=_OWN_RECORDS)
        script = record.get('script') if record else None
        advice = fresh
        if script and script != os.path.basename(sys.argv[0]):
            advice = 'it was trained by %s (%s): continue it with %s, or %s' % (
                script, os.path.basename(path), script, fresh)
        raise CheckpointMismatchError('%s; %s' % (e, advice)) from None


def resume_from(ckpt_path, flag):
    """Before a trainer resumes from ckpt_path: check_graph_variables (flag: the run folder's,
    '--train_dir'), then the line 'Resuming from <ckpt_path> (use --fresh to start over)'."""
    check_graph_variables(ckpt_path, flag)
    print('Resuming from %s (use --fresh to start over)' % ckpt_path, flush=True)


# The run records (flags-<time>.json) this process wrote: not a previous run's.
_OWN_RECORDS = set()


def latest_saved_run(run_dir, exclude=()):
    """The newest run record saved in run_dir (flags-<time>.json: a dict with 'script',
    'argv', 'flags', ...), and its file; (None, None) when there is none. exclude: files
    passed over."""
    paths = sorted(glob.glob(os.path.join(glob.escape(run_dir), 'flags-*.json')))
    for path in reversed(paths):
        if os.path.abspath(path) in exclude:
            continue
        try:
            with open(path) as f:
                record = json.load(f)
            if isinstance(record, dict) and isinstance(record.get('flags'), dict):
                return record, path
        except (OSError, ValueError):
            continue
    return None, None


def latest_saved_flags(run_dir):
    """The flags of the newest run saved in run_dir (a dict), and the file; (None, None)
    when there is none."""
    record, path = latest_saved_run(run_dir)
    return (record['flags'], path) if record else (None, None)


def own_record(path):
    """Notes that this process wrote the run record at path (latest_saved_run passes over it
    when naming who trained a folder)."""
    _OWN_RECORDS.add(os.path.abspath(path))


def check_model_flags(run_dir, values):
    """Before resuming run_dir: raises CheckpointMismatchError if it holds a checkpoint
    trained with other values of the model flags than `values` ({name: value})."""
    if not latest(run_dir):
        return
    saved, path = latest_saved_flags(run_dir)
    for name, value in values.items():
        if saved is not None and name in saved and saved[name] != value:
            raise CheckpointMismatchError(
                'the checkpoint in %s was trained with --%s=%s (%s), this run has --%s=%s; '
                'give --%s=%s, or --fresh or another directory to start over'
                % (run_dir, name, saved[name], os.path.basename(path), name, value, name,
                   saved[name]))


def take_model_flags(checkpoint_dir, values, given, where=None):
    """The model flags for a script that uses a trained model (eval.py, predict.py): those
    not given on the command line (`given`: their names) take the values the trainer saved in
    checkpoint_dir, saying so in one line. values: {name: value} as parsed. Returns the new
    {name: value}. Raises CheckpointMismatchError for a model flag given with another value
    than the trainer's. where: how the error names the folder (default
    '--checkpoint_dir=<checkpoint_dir>')."""
    saved, path = latest_saved_flags(checkpoint_dir)
    values = dict(values)
    if saved is None:
        return values
    where = where or '--checkpoint_dir=%s' % checkpoint_dir
    taken = []
    for name in values:
        if name not in saved:
            continue
        if name in given and values[name] != saved[name]:
            raise CheckpointMismatchError(
                '--%s=%s, but the checkpoints in %s were trained with --%s=%s (%s)'
                % (name, values[name], where, name, saved[name], os.path.basename(path)))
        if name not in given:
            values[name] = saved[name]
            taken.append('--%s=%s' % (name, saved[name]))
    if taken:
        print('Model flags from the trainer\'s %s: %s' % (path, ' '.join(taken)), flush=True)
    return values
