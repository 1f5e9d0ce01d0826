"""MNIST batches for the MNIST scripts: the old `tensorflow.examples.tutorials.mnist.input_data`.

    mnist = read_data_sets(data_dir)               # validation_size=5000, as the original
    mnist.train.num_examples                       # 55,000 (mnist.validation: 5,000, test: 10,000)
    images, labels = mnist.train.next_batch(100)   # float32 [100, 784] in [0, 1], int32 [100]

As the original, `read_data_sets` keeps the first `validation_size` training images (5,000 by
default) aside as `mnist.validation` and trains on the rest; `validation_size=0` keeps all 60,000
in `mnist.train`. `fake_data=True` gives the original's fake sets (every image all ones, label 1).

`next_batch` walks shuffled epochs as the original DataSet did: a new permutation each epoch, and
a batch that crosses the end of an epoch takes the rest of it and the start of the next. Here the
permutation of epoch e is drawn from (seed, e), so the stream of batches depends only on the seed
and on how many examples were handed out (`position`): `InputState` keeps both in a checkpoint,
and a resumed run continues the killed run's epochs where it stopped.

Each trainer starts its run with `training_run` (data, run folder, seeded graph). For the
scripts that train in a plain Session (mnist_with_summaries, deep_cnn), `Checkpoints` restores
(or refuses another model's checkpoint), saves, and refuses to save a diverged model.
"""

import contextlib
import os

import numpy as np
import tensorflow as tf

from common import checkpoints
from common import data
from common import config as config_lib
from common import training

NUM_CLASSES = 10
IMAGE_PIXELS = 28 * 28
VALIDATION_SIZE = 5000
TRAIN_IMAGES = 60000  # in the training files, validation set included


def data_dir_flag():
    """The scripts' --data_dir (a Config field; mnist_with_summaries keeps the tutorial's)."""
    return config_lib.flag('/tmp/mnist_data',
                           'MNIST folder (default: $TF_CLASSICS_DATA/mnist when that is set).')


class DataSet(object):
    """Images float32 [N, 784] scaled to [0, 1] (or the raw uint8 [N, 28, 28] with
    scale=False and reshape=False), labels int32 [N]."""

    def __init__(self, images, labels, seed=None, fake_data=False, scale=True, reshape=True):
        self.fake_data = fake_data
        if fake_data:
            self.num_examples = 10000
        else:
            if reshape:
                images = images.reshape(images.shape[0], images.shape[1] * images.shape[2])
            if scale:
                images = images.astype(np.float32) / 255.0
            self.images = images
            self.labels = labels
            self.num_examples = len(images)
        # the seed of the epochs' permutations: a non-negative int64, kept in checkpoints
        if seed is None:
            seed = np.random.SeedSequence().entropy
        self.seed = int(seed) % (1 << 63)
        self.position = 0  # examples handed out so far
        self._epoch, self._order = None, None

    @property
    def epochs_completed(self):
        """Epochs finished, counted as the original did: once a batch reaches past one."""
        return max(self.position - 1, 0) // self.num_examples

    def seek(self, position, seed=None):
        """Continues the stream of batches (of `seed`, when given) after `position` examples."""
        if seed is not None:
            self.seed = int(seed)
            self._epoch, self._order = None, None
        self.position = int(position)

    def _epoch_order(self, epoch):
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
        return self._order

    def next_batch(self, batch_size, shuffle=True):
        """The next batch_size examples: (images, labels)."""
        start = self.position
        self.position += batch_size
        if self.fake_data:
            return (np.ones([batch_size, IMAGE_PIXELS], np.float32),
                    np.ones([batch_size], np.int32))
        parts = []
        while batch_size > 0:
            epoch, offset = divmod(start, self.num_examples)
            take = min(batch_size, self.num_examples - offset)
            order = (self._epoch_order(epoch) if shuffle
                     else np.arange(self.num_examples))
            parts.append(order[offset:offset + take])
            start += take
            batch_size -= take
        idx = np.concatenate(parts)
        return self.images[idx], self.labels[idx]


class DataSets(object):
    def __init__(self, train, validation, test):
        self.train = train
        self.validation = validation
        self.test = test


def read_data_sets(data_dir, fake_data=False, seed=None, scale=True, reshape=True,
                   validation_size=VALIDATION_SIZE):
    """The MNIST train, validation and test sets from data_dir (downloaded when missing).

    The first validation_size training images are the validation set, the rest the training
    set (the original's split: 55,000 / 5,000 / 10,000 by default).
    Raises data.DataError for missing (offline), truncated or corrupt files, ValueError for a
    validation_size outside 0..60,000.
    """
    if fake_data:
        def fake():
            return DataSet(None, None, seed, fake_data=True)
        return DataSets(fake(), fake(), fake())
    mnist = data.load_mnist(data_dir)
    if not 0 <= validation_size <= len(mnist.train_images):
        raise ValueError('Validation size should be between 0 and %d. Received: %d.'
                         % (len(mnist.train_images), validation_size))

    def dataset(images, labels):
        return DataSet(images, labels, seed, scale=scale, reshape=reshape)
    return DataSets(
        dataset(mnist.train_images[validation_size:], mnist.train_labels[validation_size:]),
        dataset(mnist.train_images[:validation_size], mnist.train_labels[:validation_size]),
        dataset(mnist.test_images, mnist.test_labels))


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
    mnist = read_data_sets(config.data_dir, seed=config.seed, validation_size=validation_size,
                           **kwargs)
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
        checkpoints.check_graph_variables(latest,
                                          '; use --fresh or another %s' % self.run_dir_flag)
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
