"""What the training scripts share: the step log line, the divergence check, the run
directory's start (common/checkpoints.py's writer: one writer, resume, --fresh; the saved flags
of each run; the graph-level seed) and the one-line errors of every script's main."""

import contextlib
import datetime
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

from common import checkpoints
from common.errors import CheckpointMismatchError
from common.errors import DivergedError
from common import config
from common import data
from common import logs
from common import provenance

logs.define_flag()  # --tf_logs, read by common/entry.py's main_for

# The original's log line, every log_frequency steps.
STEP_LOG_FORMAT = '%s: step %d, loss = %.2f (%.1f examples/sec; %.3f sec/batch)'


def precision_flag():
    """--precision, for every trainer and the evaluator."""
    return config.flag(
        'fp32', 'Arithmetic of the model\'s ops: fp32, or bf16 (TensorFlow\'s automatic mixed '
        'precision rewrite: on a CPU oneDNN\'s bfloat16, fast where the CPU has AVX512_BF16 or '
        'AMX and emulated, slower, where it has not; on a GPU the float16 rewrite). Variables '
        'and checkpoints stay float32. --use_fp16 is the original\'s float16 model.',
        enum=['fp32', 'bf16'])


def set_precision(session_config, precision):
    """Turns on the mixed-precision rewrite that --precision=bf16 asks for in session_config
    (a ConfigProto, changed and returned); says in one line when the CPU will emulate bf16."""
    if precision != 'bf16':
        return session_config
    rewrite = session_config.graph_options.rewrite_options
    if tf.config.list_physical_devices('GPU'):
        rewrite.auto_mixed_precision = rewriter_config_pb2.RewriterConfig.ON
        return session_config
    rewrite.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    _, cpu_flags = provenance.cpu_model_and_flags()
    if not {'avx512_bf16', 'amx_bf16'} & set(cpu_flags):
        print('WARNING: --precision=bf16: this CPU has no bfloat16 instructions (AVX512_BF16 '
              'or AMX): TensorFlow will emulate them, slower than fp32', file=sys.stderr,
              flush=True)
    return session_config


def steps_per_run_flag():
    """--steps_per_run: the opt-in in-graph loop (in_graph_loop)."""
    return config.flag(
        1, 'Training steps per Session.run: above 1, an in-graph loop (tf.while_loop) runs '
        'them in one call into the runtime, as Keras\' steps_per_execution and TPUEstimator\'s '
        'iterations_per_loop (faster for small models: less Python per step). Logs, '
        'evaluations and checkpoints stay at the steps they fall on; the dropout masks come '
        'from another random op than the default\'s, so a seeded curve differs from it. '
        '1: one step per call, as the original.', lower_bound=1)


def in_graph_loop(count, step):
    """Runs `count` (an int32 scalar tensor) training steps in one Session.run: a tf.while_loop
    whose body is step(i) -> (loss, train_op) for the i-th batch of the run, one iteration after
    another (parallel_iterations=1: each step reads the variables the one before updated).
    Build the variables and the optimizer's slots outside it first (the default train op does).
    Returns the [count] losses, each computed before its step's update."""
    def body(i, losses):
        loss, train_op = step(i)
        with tf.control_dependencies([train_op]):
            return i + 1, losses.write(i, loss)

    _, losses = tf.compat.v1.while_loop(
        lambda i, _: i < count, body, [tf.constant(0), tf.TensorArray(tf.float32, count)],
        parallel_iterations=1, back_prop=False, name='steps_per_run')
    return losses.stack()


def divergence_in_summary(error, step):
    """The DivergedError a TensorFlow error stands for when it is a histogram summary refusing a
    NaN or Inf (which runs before the loss can be checked), else None. Told by the op that
    failed (the error's public `op`: a HistogramSummary, which fails for nothing else at run
    time), not by the message's words."""
    op = getattr(error, 'op', None)
    if not isinstance(error, tf.errors.InvalidArgumentError) or op is None \
            or op.type != 'HistogramSummary':
        return None
    return DivergedError(step, 'NaN or Inf in the summary %s' % op.name)


def check_finite(losses, step):
    """Raises DivergedError when any of the losses (one per tower) is NaN or Inf."""
    values = np.atleast_1d(np.asarray(losses, np.float64))
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        value = values[bad[0]]
        what = 'loss = %s' % ('NaN' if np.isnan(value) else '%sInf' % ('-' if value < 0 else ''))
        if values.size > 1:
            what += ' in tower %d' % bad[0]
        raise DivergedError(step, what)


class FiniteCheckpointGuard(tf.compat.v1.train.CheckpointSaverListener):
    """Refuses to write a checkpoint whose floating-point variables hold a NaN or an Inf, so
    that the last checkpoint of a diverged run is one to resume from."""

    def begin(self):
        variables = [v for v in tf.compat.v1.global_variables() if v.dtype.base_dtype.is_floating]
        with tf.compat.v1.name_scope('finite_checkpoint_guard'):
            self._finite = tf.reduce_all(
                tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in variables]))

    def before_save(self, session, global_step_value):
        if not session.run(self._finite):
            raise DivergedError(global_step_value, 'NaN or Inf in the variables')


def checkpoint_saver_hook(checkpoint_dir, save_steps, scaffold=None):
    """TensorFlow's CheckpointSaverHook (every save_steps and at the end) with a
    FiniteCheckpointGuard as its listener.

    Pass it after the hook that checks the loss, and give MonitoredTrainingSession
    save_checkpoint_steps=None and save_checkpoint_secs=None: its own saver would run before
    every other hook and save the step that diverged.
    """
    return tf.compat.v1.train.CheckpointSaverHook(checkpoint_dir, save_steps=save_steps,
                                                  scaffold=scaffold,
                                                  listeners=[FiniteCheckpointGuard()])


class StepLoggerHook(tf.compat.v1.train.SessionRunHook):
    """Checks every tower's loss every step and prints the original log line at every step
    that is a multiple of `log_frequency`, step 0 included (the global step as read before the
    step's run).

    examples/sec is this process's own rate: batch_size * num_towers per step it ran since its
    previous line (the first line: since its first step started; in a cluster the global step
    also counts the other workers' steps); sec/batch is the step time divided by the number of
    towers, as in the original multi-GPU trainer. A cluster worker whose global step jumps past
    a multiple prints at the next step.
    """

    def __init__(self, loss, batch_size, num_towers=1, log_frequency=10, tower_losses=None):
        """loss: the loss printed (the last tower's); tower_losses: every loss checked for
        NaN and Inf (default: [loss])."""
        self._loss = loss
        self._tower_losses = list(tower_losses or [loss])
        self._batch_size = batch_size
        self._num_towers = num_towers
        self._log_frequency = log_frequency

    def begin(self):
        self._global_step = tf.compat.v1.train.get_global_step()
        self._all_losses = tf.stack([tf.cast(l, tf.float32) for l in self._tower_losses])
        self._last_time = None  # when the steps counted in _local_steps started
        self._last_step = None  # the global step of the previous run
        self.step = None  # the global step the next run starts from, as far as this process knows

    def after_create_session(self, session, coord):
        self.step = int(session.run(self._global_step))

    def before_run(self, run_context):
        if self._last_time is None:
            self._last_time, self._local_steps = time.time(), 0
        return tf.compat.v1.train.SessionRunArgs([self._loss, self._all_losses,
                                                  self._global_step])

    def after_run(self, run_context, run_values):
        loss_value, all_losses, step = run_values.results  # step as read before this run
        self.step = step + 1
        check_finite(all_losses, step)
        self._local_steps += 1
        f = self._log_frequency
        due = (step % f == 0 if self._last_step is None
               else step // f > self._last_step // f)
        self._last_step = step
        if due:
            now = time.time()
            duration = max(now - self._last_time, 1e-6) / self._local_steps
            self._last_time, self._local_steps = now, 0
            print(STEP_LOG_FORMAT % (datetime.datetime.now(), step, loss_value,
                                     self._batch_size * self._num_towers / duration,
                                     duration / self._num_towers), flush=True)


def flags_record(flag_values):
    """What a run saves of its command line (call it in main): the script, argv, and this
    project's flags with their effective values."""
    main_module = sys.argv[0]
    values = {}
    for module, module_flags in flag_values.flags_by_module_dict().items():
        if module == main_module or module.split('.')[0] in ('cifar10', 'mnist', 'common'):
            values.update({f.name: f.value for f in module_flags})
    return {'script': os.path.basename(main_module), 'argv': list(sys.argv), 'flags': values}


def save_flags(train_dir, record):
    """Writes a flags_record (with the TensorFlow version and the time) to
    train_dir/flags-<time>.json. Returns the path written."""
    now = datetime.datetime.now()
    record = dict(record, tensorflow=tf.__version__, time=now.isoformat(timespec='seconds'))
    path = os.path.join(train_dir, 'flags-%s.json' % now.strftime('%Y%m%d-%H%M%S'))
    with open(path, 'w') as f:
        json.dump(record, f, indent=2, sort_keys=True)
    return path


@contextlib.contextmanager
def start_run_dir(run_dir, flag, fresh, record, model_flags=None):
    """The start of every trainer's run folder (--<flag>=run_dir), held while the run trains:
    with model_flags ({name: value}, the flags that change the model's variables) a
    checkpoint trained with other values is refused before anything is written or moved
    (CheckpointMismatchError); then the folder is opened for writing (checkpoints.open_writer:
    one writer, --fresh moves it aside) and the run's flags_record saved (and removed again when the block raises
    CheckpointMismatchError: a refused run leaves the folder as it was). Yields the latest
    checkpoint to resume from, or None; the trainer says 'Resuming from ...' once it has
    checked it (checkpoints.resume_from)."""
    if model_flags and not fresh:
        checkpoints.check_model_flags(run_dir, model_flags)
    with checkpoints.open_writer(run_dir, flag, fresh) as latest:
        path = save_flags(run_dir, record)
        checkpoints.own_record(path)
        try:
            yield latest
        except CheckpointMismatchError:
            os.remove(path)  # refused: the folder stays as it was
            raise


def scaffold(summary_op=None):
    """The Scaffold of a MonitoredTrainingSession that resumes and checkpoints a run folder:
    its saver (checkpoints.Saver, sharded as the Scaffold's own) writes paths relative to the
    folder and reports a checkpoint it cannot write in one line. Build it after the model.
    summary_op (default: every summary) is kept in the SUMMARY_OP collection, as the Scaffold
    keeps its default, so that a restored .meta finds the op the trainer ran."""
    if summary_op is not None:
        tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.SUMMARY_OP, summary_op)
    return tf.compat.v1.train.Scaffold(
        summary_op=summary_op,
        saver=checkpoints.saver(sharded=True, allow_empty=True, max_to_keep=5))


@contextlib.contextmanager
def ending_at_ctrl_c(session):
    """Enters `session` (a MonitoredTrainingSession) for a training loop. Ctrl-C in the loop
    ends the session as its last step would (its hooks' end(): the checkpoint hook saves the
    step reached; a second Ctrl-C during that save keeps the last complete checkpoint), then
    raises KeyboardInterrupt again."""
    interrupted = False
    with session as sess:
        try:
            yield sess
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        raise KeyboardInterrupt


@contextlib.contextmanager
def seeded_graph(seed=None):
    """A new default graph, with the graph-level random seed set when seed is not None."""
    with tf.Graph().as_default() as graph:
        if seed is not None:
            tf.compat.v1.set_random_seed(seed)
        yield graph


def diverged_message(error, learning_rate_flag):
    """The one line a diverged run ends with: the step, the checkpoint kept, what to try."""
    opened = checkpoints.opened_run_dir()
    latest = checkpoints.latest(opened[1]) if opened and os.path.isdir(opened[1]) else None
    if latest:
        kept = 'the last checkpoint, %s, is kept (finite, written before step %d)' % (
            latest, error.step)
    else:
        kept = 'no checkpoint was written'
    return 'error: %s; %s; try a lower --%s' % (error, kept, learning_rate_flag)
