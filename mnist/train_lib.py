"""The MNIST training library: what mnist/cnn_mnist.py, mnist_with_summaries.py, deep_cnn.py
(and mlp.py's event files) share around their tutorials' loops.

    with train_lib.training_run(config, run_dir, 'log_dir', steps, 'max_steps', record,
                                VALIDATION_SIZE) as mnist:  # data, run folder, seeded graph
        ...

For the scripts that train in a plain Session (mnist_with_summaries, deep_cnn), `Checkpoints`
restores (or refuses another model's checkpoint), saves, and refuses to save a diverged model;
`InputState` keeps the training batches' position in the checkpoint; `evaluate` runs a whole
DataSet in batches. Nothing here reads a flag.
"""

import contextlib
import os

import numpy as np
import tensorflow as tf

from common import checkpoints
from common import training
from mnist import input_data


@contextlib.contextmanager
def training_run(config, run_dir, run_dir_flag, steps, steps_flag, record, validation_size,
                 **kwargs):
    """The start of an MNIST trainer's run, the same in each: a finished run (its latest
    checkpoint at --<steps_flag>=steps) stops here with one line (checkpoints.NothingToDo),
    nothing read or written; the data sets read from config.data_dir (batches shuffled with
    config.seed; kwargs go to read_data_sets); --<run_dir_flag>=run_dir held for writing while
    the block runs (training.start_run_dir: one writer, --fresh, resume, the run's saved flags
    `record`); a new default graph with config.seed as its random seed. Yields the DataSets.

    Raises data.DataError for missing or corrupt data, before run_dir is touched."""
    if not config.fresh:
        checkpoints.check_done(run_dir, steps, steps_flag)
    checkpoints.check_folder(run_dir, run_dir_flag)
    mnist = input_data.read_data_sets(config.data_dir, seed=config.seed,
                                      validation_size=validation_size, **kwargs)
    with training.start_run_dir(run_dir, run_dir_flag, config.fresh, record):
        with training.seeded_graph(config.seed):
            yield mnist


def evaluate(sess, correct, loss, images, labels, dataset, batch_size=1000):
    """Accuracy and mean loss over a whole DataSet, in batches.

    Args:
      correct: tensor, number of right predictions in the batch fed.
      loss: tensor, mean loss of the batch fed.
      images, labels: the placeholders to feed.
    Returns (accuracy, mean loss).
    """
    total_correct, total_loss, n = 0.0, 0.0, dataset.num_examples
    for start in range(0, n, batch_size):
        feed = {images: dataset.images[start:start + batch_size],
                labels: dataset.labels[start:start + batch_size]}
        c, l = sess.run([correct, loss], feed)
        total_correct += c
        total_loss += l * len(feed[labels])
    return total_correct / n, total_loss / n


# ---------------------------------------------------------------------------------------------
# Resuming the plain-Session scripts
# ---------------------------------------------------------------------------------------------

class InputState(object):
    """A DataSet's stream of batches in the checkpoint: its seed and its position, two int64
    variables under `input_state/`. Build it before the Saver."""

    def __init__(self, dataset):
        self.dataset = dataset
        with tf.compat.v1.variable_scope('input_state'):
            self.seed = tf.compat.v1.get_variable(
                'seed', initializer=np.int64(dataset.seed), trainable=False)
            self.position = tf.compat.v1.get_variable(
                'position', initializer=np.int64(0), trainable=False)
            self._value = tf.compat.v1.placeholder(tf.int64, [])
            self._assign = self.position.assign(self._value)

    def save(self, sess):
        """Copies the dataset's position into its variable (before a checkpoint)."""
        sess.run(self._assign, {self._value: self.dataset.position})

    def restore(self, sess):
        """Puts the dataset back where the restored checkpoint left it."""
        seed, position = sess.run([self.seed, self.position])
        self.dataset.seek(position, seed)


class Checkpoints(object):
    """The checkpoints of a training loop run in a plain Session: `<run_dir>/model.ckpt-<step>`,
    with the global step (the loop's step) and the training batches' InputState.

    Build it after the model (its Saver saves every variable then in the graph); then
    `start = checkpoints.restore_or_initialize(sess)` and `checkpoints.save(sess, step)`.
    """

    def __init__(self, run_dir, train_set, run_dir_flag='--log_dir'):
        self.run_dir, self.run_dir_flag = run_dir, run_dir_flag
        self.global_step = tf.compat.v1.train.get_or_create_global_step()
        self._step_value = tf.compat.v1.placeholder(tf.int64, [])
        self._set_step = self.global_step.assign(self._step_value)
        self.input_state = InputState(train_set)
        self._guard = training.FiniteCheckpointGuard()
        self._guard.begin()
        self._saver = checkpoints.saver()

    def restore_or_initialize(self, sess):
        """Restores the latest checkpoint of run_dir (and the input stream), or initialises
        every variable when there is none. Returns the step to start from.

        Raises checkpoints.CheckpointMismatchError for a checkpoint of another model."""
        latest = checkpoints.latest(self.run_dir)
        if not latest:
            sess.run(tf.compat.v1.global_variables_initializer())
            return 0
        checkpoints.resume_from(latest, self.run_dir_flag)
        self._saver.restore(sess, latest)
        # keep rotating the killed run's checkpoints too (max_to_keep), inside run_dir
        checkpoints.recover(self._saver, self.run_dir)
        self.input_state.restore(sess)
        return int(sess.run(self.global_step))

    def save(self, sess, step):
        """Saves the model at `step` unless a variable holds a NaN or an Inf (then raises
        training.DivergedError)."""
        sess.run(self._set_step, {self._step_value: step})
        self._guard.before_save(sess, step)
        self.input_state.save(sess)
        self._saver.save(sess, os.path.join(self.run_dir, 'model.ckpt'), global_step=step)


def start_event_files(writers, step):
    """Marks a (re)start at `step` in each writer's event file: TensorBoard then drops what a
    killed run wrote at later steps, which this run writes again."""
    for writer in writers:
        writer.add_session_log(
            tf.compat.v1.SessionLog(status=tf.compat.v1.SessionLog.START), step)
