"""The second report's TF1 MLP, as it was written there: 784-1024-10 on raw pixels, full batch.

    python mnist/mlp.py                          # 301 steps, hidden 1024, learning rate 0.0001
    python mnist/mlp.py --grid                   # the report's 8 configurations, then a table
    python mnist/mlp.py --grid=full              # all 12 of {300, 400, 1024} x {0.5 ... 0.0001}
    python mnist/mlp.py --plot_samples=samples.png   # the first 16 training images, labelled
    python mnist/mlp.py --grid --log_dir=/tmp/mlp    # and TensorBoard scalars, a folder each

Inputs are the raw pixels cast to float (0-255, not scaled); weights truncated normal with
stddev 1.0, zero biases; relu; softmax cross entropy; the whole 60,000-image training set as one
batch; gradient descent. Every 100 steps it prints the loss, the training accuracy (of that
step's predictions) and the test accuracy. A NaN or Inf loss ends a run with one line (exit
status 1); in --grid that configuration is marked `diverged@<step>` in the table and the grid
goes on. With --log_dir the same figures go to TensorBoard (tags loss, train_accuracy and
test_accuracy, in percent, at the steps printed and the last), in one subfolder per
configuration with --grid (hidden_<h>_lr_<lr>), where a diverged one also has a
diverged_at_step scalar: the step it stopped at.
Report: loss 73,913 at step 0; test 80.6% / 84.8% / 86.4% at steps 100 / 200 / 300; of the other
configurations none got above 80%.
"""

import dataclasses
import os
import sys
import time

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

# The report loaded all 60,000 training images (its printout: 'Training set (60000, 784)').
VALIDATION_SIZE = 0
BATCH_SIZE = input_data.TRAIN_IMAGES - VALIDATION_SIZE  # full batch: the whole training set

CLASS_NAMES = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine']
REPORT_GRID = [(300, 0.5), (400, 0.5), (400, 0.01), (400, 0.001),
               (1024, 0.5), (1024, 0.01), (1024, 0.001), (1024, 0.0001)]
FULL_GRID = [(h, lr) for h in (300, 400, 1024) for lr in (0.5, 0.01, 0.001, 0.0001)]
# A --grid configuration's subfolder of --log_dir (hidden size, learning rate).
GRID_FOLDER = 'hidden_%d_lr_%g'


@dataclasses.dataclass(frozen=True)
class Config:
    """An mlp.py run: its flags."""
    hidden_size: int = config_lib.flag(1024, 'Hidden layer width.', lower_bound=1)
    learning_rate: float = config_lib.flag(0.0001, 'Gradient descent learning rate.',
                                           lower_bound=0.0)
    num_steps: int = config_lib.flag(301, 'Full-batch gradient descent steps.', lower_bound=1)
    seed: int = config_lib.flag(None, 'Graph-level random seed.')
    grid: str = config_lib.flag(
        None, "Run the report's grid search ('--grid' alone: its 8 configurations) or all 12 "
        '(--grid=full) and print a table.', enum=['report', 'full'])
    plot_samples: str = config_lib.flag(
        None, 'Draw the first 16 training images in a labelled 4x4 grid to this PNG (needs '
        'matplotlib) and exit.')
    data_dir: str = input_data.data_dir_flag()
    log_dir: str = config_lib.flag(
        None, 'Also write TensorBoard scalars here: loss, train_accuracy and test_accuracy (in '
        'percent, as printed) at the steps printed and the last step. With --grid one '
        'subfolder per configuration, hidden_<h>_lr_<lr>, with diverged_at_step (the step) '
        'where it diverged. Default: nothing written.')
    precision: str = training.precision_flag()


DEFAULTS = Config()


def define_flags():
    config_lib.define_flags(Config)


def accuracy(predictions, labels):
    """Percentage of rows whose arg-max is the label."""
    return 100.0 * np.sum(np.argmax(predictions, 1) == labels) / predictions.shape[0]


class Graph(object):
    """The report's graph, in the default graph: the data sets in variables, the two layers,
    the loss, the gradient-descent step and the train / test predictions."""

    def __init__(self, train_images, train_labels, test_images, hidden_size, learning_rate):
        # The report used tf.constant for the data sets; variables fed once at initialisation
        # hold the same values without copying 200 MB into the graph definition.
        self._data_feeds = {}
        tf_train_dataset = self._data_variable(train_images)
        tf_train_labels = self._data_variable(np.eye(10, dtype=np.float32)[train_labels])
        tf_test_dataset = self._data_variable(test_images)

        weights1 = tf.Variable(tf.random.truncated_normal([784, hidden_size]))
        biases1 = tf.Variable(tf.zeros([hidden_size]))
        weights2 = tf.Variable(tf.random.truncated_normal([hidden_size, 10]))
        biases2 = tf.Variable(tf.zeros([10]))

        def model(x):
            return tf.matmul(tf.nn.relu(tf.matmul(x, weights1) + biases1), weights2) + biases2

        logits = model(tf_train_dataset)
        self.loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(
            labels=tf_train_labels, logits=logits))
        self.optimizer = tf.compat.v1.train.GradientDescentOptimizer(learning_rate).minimize(
            self.loss)
        tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.TRAIN_OP, self.optimizer)
        self.train_prediction = tf.nn.softmax(logits)
        self.test_prediction = tf.nn.softmax(model(tf_test_dataset))

    def _data_variable(self, array):
        feed = tf.compat.v1.placeholder(array.dtype, array.shape)
        var = tf.compat.v1.Variable(feed, trainable=False, collections=[])
        self._data_feeds[var.initializer] = {feed: array}
        return var

    def initialize(self, session):
        """Loads the data sets into their variables and initialises the weights."""
        for initializer, feed in self._data_feeds.items():
            session.run(initializer, feed)
        session.run(tf.compat.v1.global_variables_initializer())

    def train_step(self, session):
        """One full-batch step; returns the loss and the training set's predictions."""
        _, l, predictions = session.run([self.optimizer, self.loss, self.train_prediction])
        return l, predictions


class ScalarLog(object):
    """The run's figures as TensorBoard scalars in log_dir (nothing when log_dir is None).
    A run starts its event file over at step 0: TensorBoard then shows this run's points, not
    those of an earlier run into the same folder."""

    def __init__(self, log_dir):
        self._writer = tf.compat.v1.summary.FileWriter(log_dir) if log_dir else None
        if self._writer:
            train_lib.start_event_files([self._writer], 0)

    def write(self, step, **values):
        if self._writer:
            self._writer.add_summary(summaries.scalar_values(values), step)

    def close(self):
        if self._writer:
            self._writer.close()


# A full-batch step takes seconds on a laptop CPU: a progress line at least this often.
PROGRESS_SECS = 30


def run(train_images, train_labels, test_images, test_labels, hidden_size, learning_rate,
        num_steps, seed=None, log=print, log_dir=None, precision='fp32'):
    """Trains the MLP full-batch; returns a dict of the final loss and accuracies (percent).
    With log_dir, writes them as TensorBoard scalars there (see ScalarLog). Raises
    training.DivergedError at the first NaN or Inf loss (with log_dir: diverged_at_step
    written). precision: see training.precision_flag."""
    with training.seeded_graph(seed):
        graph = Graph(train_images, train_labels, test_images, hidden_size, learning_rate)
        scalars = ScalarLog(log_dir)
        try:
            with tf.compat.v1.Session(config=training.set_precision(
                    tf.compat.v1.ConfigProto(), precision)) as session:
                graph.initialize(session)
                started = last_line = time.time()
                for step in range(num_steps):
                    l, predictions = graph.train_step(session)
                    try:
                        training.check_finite(l, step)
                    except training.DivergedError as e:
                        scalars.write(e.step, diverged_at_step=e.step)
                        raise
                    if step % 100 == 0 or step == num_steps - 1:
                        train_acc = accuracy(predictions, train_labels)
                        test_acc = accuracy(session.run(graph.test_prediction), test_labels)
                        scalars.write(step, loss=l, train_accuracy=train_acc,
                                      test_accuracy=test_acc)
                        if step % 100 == 0:
                            log('Loss at step %d: %f' % (step, l))
                            log('Training accuracy: %.1f%%' % train_acc)
                            log('Test accuracy: %.1f%%' % test_acc)
                            last_line = time.time()
                    if time.time() - last_line >= PROGRESS_SECS and step < num_steps - 1:
                        log('(step %d of %d done, %.0f s)' % (step + 1, num_steps,
                                                             time.time() - started))
                        last_line = time.time()
        finally:
            scalars.close()
    return {'loss': float(l), 'train_accuracy': train_acc, 'test_accuracy': test_acc}


def plot_samples(images, labels, path):
    """The first 16 images in a 4x4 grid, each titled with its class name."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("error: --plot_samples needs matplotlib: pip install -e '.[plot]'")
    fig, axes = plt.subplots(4, 4, figsize=(6, 6))
    for ax, image, label in zip(axes.flat, images[:16], labels[:16]):
        ax.imshow(image.reshape(28, 28), cmap='gray')
        ax.set_title(CLASS_NAMES[label])
        ax.axis('off')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    print('Wrote %s' % path)


def grid_table(rows):
    """The grid's results as a Markdown table: one row per (hidden, learning rate, result),
    result being run()'s dict or the DivergedError of that configuration."""
    lines = ['| hidden | learning rate | final loss | train accuracy | test accuracy |',
             '|---|---|---|---|---|']
    for hidden, lr, r in rows:
        if isinstance(r, training.DivergedError):
            lines.append('| %d | %g | diverged@%d | - | nan |' % (hidden, lr, r.step))
        else:
            lines.append('| %d | %g | %.4g | %.1f%% | %.1f%% |' % (
                hidden, lr, r['loss'], r['train_accuracy'], r['test_accuracy']))
    if any(isinstance(r, training.DivergedError) for _, _, r in rows):
        lines.append('\ndiverged@N: the loss was NaN or Inf at step N, where that run stopped.')
    return '\n'.join(lines)


def grid_search(config, sets):
    """Trains each configuration of config.grid on sets (train images, train labels, test
    images, test labels), going on after one that diverges. Returns the grid_table rows."""
    rows = []
    for hidden, lr in (REPORT_GRID if config.grid == 'report' else FULL_GRID):
        print('hidden %d, learning rate %g' % (hidden, lr), flush=True)
        log_dir = config.log_dir and os.path.join(config.log_dir, GRID_FOLDER % (hidden, lr))
        try:
            result = run(*sets, hidden, lr, config.num_steps, config.seed,
                         log=lambda line: print('  ' + line, flush=True), log_dir=log_dir,
                         precision=config.precision)
        except training.DivergedError as e:
            print('  %s; on to the next configuration' % e, flush=True)
            result = e
        rows.append((hidden, lr, result))
    return rows


def train(config):
    """Trains once, or the grid, or draws the samples, as config says."""
    mnist = input_data.read_data_sets(config.data_dir, scale=False,
                                      validation_size=VALIDATION_SIZE)
    train_images = mnist.train.images.astype(np.float32)  # raw pixels, not scaled
    test_images = mnist.test.images.astype(np.float32)
    if config.plot_samples:
        plot_samples(train_images, mnist.train.labels, config.plot_samples)
        return
    print('Training set', train_images.shape, flush=True)
    sets = (train_images, mnist.train.labels, test_images, mnist.test.labels)
    if not config.grid:
        run(*sets, config.hidden_size, config.learning_rate, config.num_steps, config.seed,
            log_dir=config.log_dir, precision=config.precision)
        return
    print('\n' + grid_table(grid_search(config, sets)), flush=True)


def main(_):
    config = config_lib.from_flags(Config, FLAGS, 'mnist')
    if not config.log_dir:
        train(config)
        return
    with checkpoints.hold(config.log_dir, 'log_dir'):  # its one writer
        train(config)


def _flags_parser(argv):
    # '--grid' alone means the report's grid (an enum flag needs a value).
    argv = ['--grid=report' if a == '--grid' else a for a in argv]
    return FLAGS(argv)


if __name__ == '__main__':
    entry.run(define_flags, main, 'learning_rate', flags_parser=_flags_parser)
