"""The "TF Layers: Building a Convolutional Neural Network" MNIST tutorial (cnn_mnist.py).

    python mnist/cnn_mnist.py                      # 20,000 steps, then evaluation
    python mnist/cnn_mnist.py --train_steps=200 --model_dir=/tmp/cnn_try

conv 5x5x32 SAME relu -> max-pool 2x2/2 -> conv 5x5x64 -> max-pool -> dense 1024 relu ->
dropout 0.4 (training only) -> dense 10; gradient descent 0.001 on batches of 100 of the
55,000 training images (the first 5,000 are the validation set, as `load_dataset("mnist")` gave
them), in the order the tutorial's numpy_input_fn gave them (see ShuffleQueueInput).
The original was an Estimator (gone in TF 2.16); what it gave its users is kept: softmax
probabilities logged every 50 steps, loss and steps/sec every 100, checkpoints in --model_dir
with resume on re-run, event files for TensorBoard, and a final evaluation over the 10,000 test
images printing {'accuracy': ..., 'loss': ..., 'global_step': ...}. A NaN or Inf loss ends the
run with one line, before anything is saved after that step.
Report: 0.9699 after 20,000 steps (tutorial: 0.9733, loss 0.0902).
"""

import dataclasses

from absl import flags
import numpy as np
import common
common.before_tensorflow()  # oneDNN kernels, TensorFlow's log lines: common/__init__.py
import tensorflow as tf

from common import checkpoints
from common import config as config_lib
from common import entry
from common import summaries
from common import training
from mnist import input_data
from mnist import train_lib

FLAGS = flags.FLAGS

# tf.contrib.learn.datasets.load_dataset('mnist') kept input_data's validation set: the
# tutorial trained on the other 55,000 images.
VALIDATION_SIZE = 5000


@dataclasses.dataclass(frozen=True)
class Config:
    """A cnn_mnist run: its flags."""
    model_dir: str = config_lib.flag(
        '/tmp/mnist_convnet_model',
        'Where checkpoints and event files go (re-running resumes from it).')
    fresh: bool = config_lib.flag(False, 'Move an existing --model_dir aside and start over.')
    train_steps: int = config_lib.flag(20000, 'Number of training steps (a run already at this '
                                                'step, or 0: nothing to do).', lower_bound=0)
    batch_size: int = config_lib.flag(100, 'Training batch size.', lower_bound=1)
    learning_rate: float = config_lib.flag(0.001, 'Gradient descent learning rate.',
                                           lower_bound=0.0)
    precision: str = training.precision_flag()
    data_dir: str = input_data.data_dir_flag()
    seed: int = config_lib.flag(None, 'Graph-level and shuffling seed.')


DEFAULTS = Config()


def define_flags():
    config_lib.define_flags(Config)


class ShuffleQueueInput(object):
    """The tutorial's input, in NumPy: what `tf.estimator.inputs.numpy_input_fn(x, y,
    batch_size=100, num_epochs=None, shuffle=True)` gave the model (TF 1.x, numpy_io.py and
    queues/feeding_functions.py).

    That input_fn made a RandomShuffleQueue of capacity 1,000 (its queue_capacity default) with
    min_after_dequeue 250 (a quarter of it), and one feeder thread that walked the arrays in
    order, 100 rows (batch_size) per enqueue, from a random starting row, wrapping around
    forever: no reshuffle per epoch. Each dequeue_many(100) took its rows one at a time, each
    uniformly at random among the rows in the queue, while more than min_after_dequeue were
    there; the feeder refilled the queue as soon as there was room and, far faster than a
    training step, kept it full (from before the first step too). So a batch is batch_size rows
    drawn without replacement from a window of 1,000 rows that moves through the training set
    in file order; each row stays about 10 batches in it. A test compares this with
    TensorFlow's own queue.
    """

    def __init__(self, images, labels, capacity=1000, seed=None):
        self.images, self.labels = images, labels
        self._capacity = capacity
        self._min_after_dequeue = capacity // 4
        self._rng = np.random.default_rng(seed)
        self._next_row = int(self._rng.integers(len(images)))  # the feeder's random start
        self._queue = np.zeros([0], np.int64)  # row numbers

    def _fill(self):
        count = self._capacity - len(self._queue)
        rows = (self._next_row + np.arange(count)) % len(self.images)
        self._next_row = (self._next_row + count) % len(self.images)
        self._queue = np.concatenate([self._queue, rows])

    def next_batch(self, batch_size):
        """The next batch_size rows: (images, labels)."""
        taken, needed = [], batch_size
        while needed:
            self._fill()
            count = min(needed, len(self._queue) - self._min_after_dequeue)
            picks = self._rng.choice(len(self._queue), count, replace=False)
            taken.append(self._queue[picks])
            self._queue = np.delete(self._queue, picks)
            needed -= count
        rows = np.concatenate(taken)
        return self.images[rows], self.labels[rows]


def _dense(x, units, name, activation=None):
    with tf.compat.v1.variable_scope(name):
        w = tf.compat.v1.get_variable('kernel', [x.shape[-1], units],
                                      initializer=tf.compat.v1.glorot_uniform_initializer())
        b = tf.compat.v1.get_variable('bias', [units], initializer=tf.compat.v1.zeros_initializer())
        y = tf.matmul(x, w) + b
        return activation(y) if activation else y


def _conv(x, filters, name):
    with tf.compat.v1.variable_scope(name):
        w = tf.compat.v1.get_variable('kernel', [5, 5, x.shape[-1], filters],
                                      initializer=tf.compat.v1.glorot_uniform_initializer())
        b = tf.compat.v1.get_variable('bias', [filters],
                                      initializer=tf.compat.v1.zeros_initializer())
        return tf.nn.relu(tf.nn.conv2d(x, w, 1, 'SAME') + b)


def cnn_model(images, training):
    """The tutorial's cnn_model_fn network (tf.layers defaults: Glorot-uniform kernels, zero
    biases). images float32 [batch, 784]; training a bool tensor. Returns logits [batch, 10]."""
    input_layer = tf.reshape(images, [-1, 28, 28, 1])
    conv1 = _conv(input_layer, 32, 'conv2d')
    pool1 = tf.nn.max_pool2d(conv1, 2, 2, 'VALID')
    conv2 = _conv(pool1, 64, 'conv2d_1')
    pool2 = tf.nn.max_pool2d(conv2, 2, 2, 'VALID')
    pool2_flat = tf.reshape(pool2, [-1, 7 * 7 * 64])
    dense = _dense(pool2_flat, 1024, 'dense', tf.nn.relu)
    dropout = tf.compat.v1.cond(training, lambda: tf.nn.dropout(dense, rate=0.4), lambda: dense)
    return _dense(dropout, 10, 'dense_1')


class Model(object):
    """The graph: placeholders, logits, loss, train op and evaluation counters."""

    def __init__(self, learning_rate, inputs=None):
        """inputs: (images, labels) tensors to train on instead of the placeholders (the
        benchmark's in-memory batch); training is then on by default."""
        if inputs is None:
            self.images = tf.compat.v1.placeholder(tf.float32, [None, 784], name='images')
            self.labels = tf.compat.v1.placeholder(tf.int32, [None], name='labels')
        else:
            self.images, self.labels = inputs
        self.training = tf.compat.v1.placeholder_with_default(inputs is not None, [],
                                                              name='training')
        self.global_step = tf.compat.v1.train.get_or_create_global_step()
        logits = cnn_model(self.images, self.training)
        self.probabilities = tf.nn.softmax(logits, name='softmax_tensor')
        self.loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels=self.labels,
                                                                     logits=logits)
        tf.compat.v1.summary.scalar('loss', self.loss)
        optimizer = tf.compat.v1.train.GradientDescentOptimizer(learning_rate)
        self.train_op = optimizer.minimize(self.loss, global_step=self.global_step)
        tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.TRAIN_OP, self.train_op)
        self.correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32),
                                                      self.labels), tf.int32))


class FiniteLossHook(tf.compat.v1.train.SessionRunHook):
    """Ends training with training.DivergedError at the first NaN or Inf loss (in place of the
    Estimator's NanTensorHook, whose error came with a traceback)."""

    def __init__(self, loss):
        self._loss = loss

    def before_run(self, run_context):
        return tf.compat.v1.train.SessionRunArgs(
            [self._loss, tf.compat.v1.train.get_global_step()])

    def after_run(self, run_context, run_values):
        loss, step = run_values.results  # step as read before this run
        training.check_finite(loss, step)


def training_session(config, model, session_config=None):
    """The Estimator's session: resumes from config.model_dir, stops at config.train_steps,
    logs the probabilities every 50 steps and loss / steps per second every 100, checks the
    loss for NaN and Inf, checkpoints every 1,000 steps and at the end (never after a bad loss,
    never non-finite variables) and writes summaries every 100. session_config: a ConfigProto
    or None."""
    scaffold = training.scaffold()
    hooks = [
        tf.compat.v1.train.StopAtStepHook(last_step=config.train_steps),
        tf.compat.v1.train.LoggingTensorHook({'probabilities': model.probabilities},
                                             every_n_iter=50),
        tf.compat.v1.train.LoggingTensorHook({'loss': model.loss, 'step': model.global_step},
                                             every_n_iter=100),
        FiniteLossHook(model.loss),
        training.checkpoint_saver_hook(config.model_dir, 1000, scaffold),  # after the check
    ]
    return tf.compat.v1.train.MonitoredTrainingSession(
        checkpoint_dir=config.model_dir, scaffold=scaffold, hooks=hooks, save_checkpoint_steps=None,
        save_checkpoint_secs=None, save_summaries_steps=100, log_step_count_steps=100,
        config=session_config)


def train_input(config, mnist):
    """The training batches of a run starting at the latest checkpoint of config.model_dir.
    As the Estimator called the input_fn again, a resumed run starts a new queue at a new
    random row (with a seed: a seed of its own, from config.seed and the step it starts at)."""
    latest = checkpoints.latest(config.model_dir)
    start = int(tf.train.load_checkpoint(latest).get_tensor('global_step')) if latest else 0
    seed = None if config.seed is None else [config.seed % (1 << 63), start]
    return ShuffleQueueInput(mnist.train.images, mnist.train.labels, seed=seed)


def train_step(sess, model, batches, batch_size):
    """One step on the next batch of batch_size from `batches` (a ShuffleQueueInput)."""
    images, labels = batches.next_batch(batch_size)
    sess.run(model.train_op, feed_dict={model.images: images, model.labels: labels,
                                        model.training: True})


def train(config, model, mnist, session_config=None):
    """Trains to config.train_steps, resuming from config.model_dir; logs as the Estimator
    did. Raises checkpoints.CheckpointMismatchError when the folder holds another model's
    checkpoint."""
    latest = checkpoints.latest(config.model_dir)
    if latest:
        checkpoints.resume_from(latest, '--model_dir')
    batches = train_input(config, mnist)
    with training.ending_at_ctrl_c(training_session(config, model, session_config)) as sess:
        while not sess.should_stop():
            train_step(sess, model, batches, config.batch_size)


def evaluate(model, mnist, model_dir, session_config=None):
    """Accuracy and mean loss of the latest checkpoint in model_dir over the whole test set;
    returns a dict and writes them as summaries to model_dir/eval."""
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session(config=session_config) as sess:
        saver.restore(sess, checkpoints.latest(model_dir))
        accuracy, loss = train_lib.evaluate(sess, model.correct, model.loss, model.images,
                                             model.labels, mnist.test)
        step = sess.run(model.global_step)
    results = {'accuracy': accuracy, 'loss': loss, 'global_step': int(step)}
    writer = tf.compat.v1.summary.FileWriter(model_dir + '/eval')
    writer.add_summary(summaries.scalar_values(
        {'accuracy': results['accuracy'], 'loss': results['loss']}), step)
    writer.close()
    return results


def run(config, record):
    """Trains (or resumes) in config.model_dir, evaluates, prints the Estimator's result dict.
    record: the run's training.flags_record, saved in model_dir."""
    with train_lib.training_run(config, config.model_dir, 'model_dir', config.train_steps,
                                 'train_steps', record, VALIDATION_SIZE) as mnist:
        model = Model(config.learning_rate)
        session_config = training.set_precision(tf.compat.v1.ConfigProto(), config.precision)
        train(config, model, mnist, session_config)
        results = evaluate(model, mnist, config.model_dir, session_config)
    print({k: (round(float(v), 4) if isinstance(v, (float, np.floating)) else v)
           for k, v in results.items()}, flush=True)


def main(_):
    run(config_lib.from_flags(Config, FLAGS, 'mnist'), training.flags_record(FLAGS))


if __name__ == '__main__':
    entry.run(define_flags, main, 'learning_rate')
