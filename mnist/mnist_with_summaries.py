"""The "TensorBoard: Visualizing Learning" tutorial (mnist_with_summaries.py).

    python mnist/mnist_with_summaries.py                                   # 1,000 steps
    python mnist/mnist_with_summaries.py --max_steps=20000 --test_every=100  # the report's run
    python mnist/mnist_with_summaries.py --fake_data --max_steps=10 --learning_rate=0.00
    tensorboard --logdir /tmp/tensorflow/mnist/logs/mnist_with_summaries

784-500-10 with dropout, Adam, batches of 100 in shuffled epochs of the 55,000 training images
(the first 5,000 are `mnist.validation`, as in the original's read_data_sets). Every summary
the original wrote: mean, stddev, max, min and histogram of each weight and bias,
pre-activation and activation histograms, the dropout keep probability, cross entropy, accuracy
and 10 input images; `train` and `test` writers. Every --test_every steps the accuracy over the
full test set is printed as 'Accuracy at step %s: %s'; every 100th step (i % 100 == 99) runs
with a full trace. A checkpoint every --checkpoint_steps steps and at the end; re-running
resumes from the latest (--fresh moves the folder aside). A NaN or Inf loss ends the run with
one line, before anything is saved after that step.
Report: 0.9683 at 1,000 steps; 0.983 at 20,000 steps with --test_every=100.
"""

import dataclasses
import os

from absl import flags
import common
common.before_tensorflow()  # oneDNN kernels, TensorFlow's log lines: common/__init__.py
import tensorflow as tf

from common import config as config_lib
from common import entry
from common import summaries
from common import training
from mnist import input_data
from mnist import train_lib

FLAGS = flags.FLAGS

# input_data.read_data_sets' default: the first 5,000 training images are the validation set,
# the tutorial trained on the other 55,000.
VALIDATION_SIZE = 5000
BATCH_SIZE = 100  # the tutorial's training batch (no flag)


@dataclasses.dataclass(frozen=True)
class Config:
    """An mnist_with_summaries run: its flags (the tutorial's names and defaults)."""
    fake_data: bool = config_lib.flag(False, 'If true, uses fake data for unit testing.')
    max_steps: int = config_lib.flag(1000, 'Number of steps to run trainer (a run already at this '
                                             'step, or 0: nothing to do).', lower_bound=0)
    learning_rate: float = config_lib.flag(0.001, 'Initial learning rate', lower_bound=0.0)
    dropout: float = config_lib.flag(0.9, 'Keep probability for training dropout.',
                                     lower_bound=0.0, upper_bound=1.0)
    data_dir: str = config_lib.flag('/tmp/tensorflow/mnist/input_data',
                                    'Directory for storing input data (default: '
                                    '$TF_CLASSICS_DATA/mnist when that is set).')
    log_dir: str = config_lib.flag(
        os.path.join(os.getenv('TEST_TMPDIR', '/tmp'), 'tensorflow/mnist/logs/mnist_with_summaries'),
        'Summaries log directory')
    test_every: int = config_lib.flag(10, 'Test-set accuracy every this many steps.',
                                      lower_bound=1)
    checkpoint_steps: int = config_lib.flag(1000, 'Save a checkpoint every this many steps.',
                                            lower_bound=1)
    fresh: bool = config_lib.flag(False, 'Move an existing --log_dir aside and start over.')
    seed: int = config_lib.flag(None, 'Graph-level and shuffling seed.')
    precision: str = training.precision_flag()


DEFAULTS = Config()


def define_flags():
    config_lib.define_flags(Config)


def variable_summaries(var):
    """Mean, stddev, max, min scalars and a histogram of var (for TensorBoard)."""
    with tf.compat.v1.name_scope('summaries'):
        mean = tf.reduce_mean(var)
        summaries.scalar('mean', mean, in_scope=True)
        with tf.compat.v1.name_scope('stddev'):
            stddev = tf.sqrt(tf.reduce_mean(tf.square(var - mean)))
        summaries.scalar('stddev', stddev, in_scope=True)
        summaries.scalar('max', tf.reduce_max(var), in_scope=True)
        summaries.scalar('min', tf.reduce_min(var), in_scope=True)
        summaries.histogram('histogram', var, in_scope=True)


def nn_layer(input_tensor, input_dim, output_dim, layer_name, act=tf.nn.relu):
    """matmul + bias + act, weights truncated normal (stddev 0.1), biases 0.1, with summaries."""
    with tf.compat.v1.name_scope(layer_name):
        with tf.compat.v1.name_scope('weights'):
            weights = tf.compat.v1.Variable(
                tf.random.truncated_normal([input_dim, output_dim], stddev=0.1))
            variable_summaries(weights)
        with tf.compat.v1.name_scope('biases'):
            biases = tf.compat.v1.Variable(tf.constant(0.1, shape=[output_dim]))
            variable_summaries(biases)
        with tf.compat.v1.name_scope('Wx_plus_b'):
            preactivate = tf.matmul(input_tensor, weights) + biases
            summaries.histogram('pre_activations', preactivate, in_scope=True)
        activations = act(preactivate, name='activation')
        summaries.histogram('activations', activations, in_scope=True)
        return activations


class Model(object):
    """The tutorial's graph: x, y_, keep_prob placeholders; train_step, accuracy, merged."""

    def __init__(self, learning_rate, inputs=None):
        """inputs: (x, y_) tensors to use instead of the placeholders (the benchmark's
        in-memory batch)."""
        with tf.compat.v1.name_scope('input'):
            if inputs is None:
                self.x = tf.compat.v1.placeholder(tf.float32, [None, 784], name='x-input')
                self.y_ = tf.compat.v1.placeholder(tf.int64, [None], name='y-input')
            else:
                self.x, self.y_ = inputs
        with tf.compat.v1.name_scope('input_reshape'):
            image_shaped_input = tf.reshape(self.x, [-1, 28, 28, 1])
            tf.compat.v1.summary.image('input', image_shaped_input, 10)
        hidden1 = nn_layer(self.x, 784, 500, 'layer1')
        with tf.compat.v1.name_scope('dropout'):
            self.keep_prob = tf.compat.v1.placeholder(tf.float32)
            summaries.scalar('dropout_keep_probability', self.keep_prob, in_scope=True)
            dropped = tf.nn.dropout(hidden1, rate=1 - self.keep_prob)
        y = nn_layer(dropped, 500, 10, 'layer2', act=tf.identity)
        with tf.compat.v1.name_scope('cross_entropy'):
            with tf.compat.v1.name_scope('total'):
                self.cross_entropy = tf.compat.v1.losses.sparse_softmax_cross_entropy(
                    labels=self.y_, logits=y)
        summaries.scalar('cross_entropy', self.cross_entropy, in_scope=True)
        with tf.compat.v1.name_scope('train'):
            self.train_step = tf.compat.v1.train.AdamOptimizer(learning_rate).minimize(
                self.cross_entropy)
        tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.TRAIN_OP, self.train_step)
        with tf.compat.v1.name_scope('accuracy'):
            with tf.compat.v1.name_scope('correct_prediction'):
                correct_prediction = tf.equal(tf.argmax(y, 1), self.y_)
            with tf.compat.v1.name_scope('accuracy'):
                self.accuracy = tf.reduce_mean(tf.cast(correct_prediction, tf.float32))
        summaries.scalar('accuracy', self.accuracy, in_scope=True)
        self.merged = tf.compat.v1.summary.merge_all()


def train_step(sess, model, train_writer, i, feed_dict):
    """Training step i: its summaries to train_writer, with a full trace every 100th step.
    Returns the step's cross entropy (before the update)."""
    if i % 100 == 99:  # Record execution stats
        run_options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
        run_metadata = tf.compat.v1.RunMetadata()
        summary, loss, _ = sess.run([model.merged, model.cross_entropy, model.train_step],
                                    feed_dict=feed_dict, options=run_options,
                                    run_metadata=run_metadata)
        train_writer.add_run_metadata(run_metadata, 'step%03d' % i)
        train_writer.add_summary(summary, i)
        print('Adding run metadata for', i, flush=True)
    else:  # Record a summary
        summary, loss, _ = sess.run([model.merged, model.cross_entropy, model.train_step],
                                    feed_dict=feed_dict)
        train_writer.add_summary(summary, i)
    return loss


def train(config, mnist):
    """The tutorial's loop, resumed from the latest checkpoint in config.log_dir. Returns the
    final test-set accuracy."""
    model = Model(config.learning_rate)
    checkpoints = train_lib.Checkpoints(config.log_dir, mnist.train)
    sess = tf.compat.v1.Session(config=training.set_precision(tf.compat.v1.ConfigProto(),
                                                              config.precision))
    start = checkpoints.restore_or_initialize(sess)  # 0, or the step of the checkpoint
    train_writer = tf.compat.v1.summary.FileWriter(config.log_dir + '/train', sess.graph)
    test_writer = tf.compat.v1.summary.FileWriter(config.log_dir + '/test')
    train_lib.start_event_files([train_writer, test_writer], start)
    last = max(start, config.max_steps)

    def feed_dict(train_batch):
        """A training batch with dropout, or the whole test set without."""
        if train_batch or config.fake_data:
            xs, ys = mnist.train.next_batch(BATCH_SIZE)
            k = config.dropout
        else:
            xs, ys = mnist.test.images, mnist.test.labels
            k = 1.0
        return {model.x: xs, model.y_: ys, model.keep_prob: k}

    i = start
    try:
        for i in range(start, config.max_steps):
            if i > start and i % config.checkpoint_steps == 0:
                checkpoints.save(sess, i)
            if i % config.test_every == 0:  # Record summaries and test-set accuracy
                summary, acc = sess.run([model.merged, model.accuracy],
                                        feed_dict=feed_dict(False))
                test_writer.add_summary(summary, i)
                print('Accuracy at step %s: %s' % (i, acc), flush=True)
            else:
                loss = train_step(sess, model, train_writer, i, feed_dict(True))
                training.check_finite(loss, i)
        if last > start:
            checkpoints.save(sess, last)
        summary, acc = sess.run([model.merged, model.accuracy], feed_dict=feed_dict(False))
    except tf.errors.InvalidArgumentError as e:  # a histogram of NaN weights
        raise training.divergence_in_summary(e, i) or e
    except KeyboardInterrupt:  # Ctrl-C: keep the steps done (a second one: the last save)
        if i > start:
            checkpoints.save(sess, i)
        raise
    test_writer.add_summary(summary, last)
    print('Final test accuracy after %d steps: %s' % (last, acc), flush=True)
    train_writer.close()
    test_writer.close()
    sess.close()
    return acc


def run(config, record):
    """Trains (or resumes) in config.log_dir on the 55,000 training images. record: the run's
    training.flags_record, saved in log_dir."""
    # The original deleted log_dir; re-running resumes, and --fresh moves it aside.
    with train_lib.training_run(config, config.log_dir, 'log_dir', config.max_steps,
                                 'max_steps', record, VALIDATION_SIZE,
                                 fake_data=config.fake_data) as mnist:
        train(config, mnist)


def main(_):
    run(config_lib.from_flags(Config, FLAGS, 'mnist'), training.flags_record(FLAGS))


if __name__ == '__main__':
    entry.run(define_flags, main, 'learning_rate')
