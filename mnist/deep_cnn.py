"""The report's main MNIST solution: 3 conv layers + TensorBoard (Görner's model 3.1 style).

    python mnist/deep_cnn.py                          # 10,000 batches of 100
    python mnist/deep_cnn.py --max_steps=20000        # the same --log_dir: resumes at 10,000
    tensorboard --logdir /tmp/mnist_deep_cnn

conv 6x6 stride 1 -> 6 channels, 5x5 stride 2 -> 12, 4x4 stride 2 -> 24, dense 200 relu with
dropout (keep 0.75), softmax; weights truncated normal (stddev 0.1), biases 0.1; Adam with
learning rate 0.0001 + 0.0029 * exp(-step / 2000); batches of 100 in shuffled epochs of all
60,000 training images (Görner's loaders kept no validation set). Every --eval_every batches:
train and test accuracy/loss scalars and weight/bias histograms to TensorBoard, and the test
accuracy printed. A checkpoint every --checkpoint_steps batches and at the end; re-running
resumes from the latest (--fresh moves the folder aside). A NaN or Inf loss ends the run with
one line, before anything is saved after that step.
Report: 0.9926 after 10,000 batches (Görner: 0.9928-0.9931).
"""

import dataclasses

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

# Görner's model 3.1 trained on all 60,000 training images: his loaders kept no validation
# set (input_data.read_data_sets(..., validation_size=0), later his own mnistdata.read_data_sets).
VALIDATION_SIZE = 0


@dataclasses.dataclass(frozen=True)
class Config:
    """A deep_cnn run: its flags."""
    max_steps: int = config_lib.flag(10000, 'Number of training batches (a run already at this '
                                              'step, or 0: nothing to do).', lower_bound=0)
    batch_size: int = config_lib.flag(100, 'Training batch size.', lower_bound=1)
    precision: str = training.precision_flag()
    log_dir: str = config_lib.flag('/tmp/mnist_deep_cnn', 'Summaries and checkpoint directory.')
    data_dir: str = input_data.data_dir_flag()
    eval_every: int = config_lib.flag(
        100, 'Test accuracy and summaries every this many batches.', lower_bound=1)
    checkpoint_steps: int = config_lib.flag(
        1000, 'Save a checkpoint every this many batches.', lower_bound=1)
    fresh: bool = config_lib.flag(False, 'Move an existing --log_dir aside and start over.')
    max_learning_rate: float = config_lib.flag(0.003, 'Learning rate at step 0.',
                                               lower_bound=0.0)
    min_learning_rate: float = config_lib.flag(0.0001, 'Learning rate it decays towards.',
                                               lower_bound=0.0)
    decay_speed: float = config_lib.flag(
        2000.0, 'Steps for the decay to shrink by a factor e.', lower_bound=1e-9)
    seed: int = config_lib.flag(None, 'Graph-level and shuffling seed.')
    steps_per_run: int = training.steps_per_run_flag()


DEFAULTS = Config()


def define_flags():
    config_lib.define_flags(Config)


def _weights(shape, name):
    return tf.compat.v1.get_variable(
        name, shape, initializer=tf.compat.v1.truncated_normal_initializer(stddev=0.1))


def _biases(n, name):
    return tf.compat.v1.get_variable(name, [n], initializer=tf.compat.v1.constant_initializer(0.1))


def deep_cnn(images, pkeep):
    """images float32 [batch, 784] in [0, 1]; pkeep the dropout keep probability (tensor).
    Returns logits [batch, 10]."""
    x = tf.reshape(images, [-1, 28, 28, 1])
    layers = [('conv1', 6, 6, 1, 6, 1), ('conv2', 5, 5, 6, 12, 2), ('conv3', 4, 4, 12, 24, 2)]
    for name, kh, kw, cin, cout, stride in layers:
        with tf.compat.v1.variable_scope(name):
            x = tf.nn.relu(tf.nn.conv2d(x, _weights([kh, kw, cin, cout], 'weights'), stride,
                                        'SAME') + _biases(cout, 'biases'))
    x = tf.reshape(x, [-1, 7 * 7 * 24])
    with tf.compat.v1.variable_scope('fc4'):
        x = tf.nn.relu(tf.matmul(x, _weights([7 * 7 * 24, 200], 'weights')) +
                       _biases(200, 'biases'))
        x = tf.nn.dropout(x, rate=1 - pkeep)
    with tf.compat.v1.variable_scope('softmax'):
        return tf.matmul(x, _weights([200, 10], 'weights')) + _biases(10, 'biases')


def learning_rate(step, max_rate=0.003, min_rate=0.0001, decay_speed=2000.0):
    """min + (max - min) * exp(-step / decay_speed): by default 0.0001 + 0.0029 *
    exp(-step / 2000), from 0.003 down to 0.0001."""
    return min_rate + (max_rate - min_rate) * tf.exp(-tf.cast(step, tf.float32) / decay_speed)


def cross_entropy(logits, labels):
    """Görner's cross entropy: mean over the batch, times 100 ("per 100 images")."""
    return 100.0 * tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits))


class Model(object):
    def __init__(self, inputs=None, max_learning_rate=0.003, min_learning_rate=0.0001,
                 decay_speed=2000.0, steps_per_run=1):
        """inputs: (images, labels) tensors to use instead of the placeholders (the benchmark's
        in-memory batch). steps_per_run above 1 adds run_images [steps, batch, 784],
        run_labels [steps, batch] and run_losses (else None): those steps in one Session.run
        (the in-graph loop of --steps_per_run)."""
        if inputs is None:
            self.images = tf.compat.v1.placeholder(tf.float32, [None, 784], name='images')
            self.labels = tf.compat.v1.placeholder(tf.int32, [None], name='labels')
        else:
            self.images, self.labels = inputs
        self.pkeep = tf.compat.v1.placeholder_with_default(1.0, [], name='pkeep')
        self.global_step = tf.compat.v1.train.get_or_create_global_step()
        logits = deep_cnn(self.images, self.pkeep)
        self.loss = cross_entropy(logits, self.labels)
        self.correct = tf.reduce_sum(tf.cast(
            tf.equal(tf.argmax(logits, 1, output_type=tf.int32), self.labels), tf.float32))
        self.lr = learning_rate(self.global_step, max_learning_rate, min_learning_rate,
                                decay_speed)
        # In the in-graph loop each step reads its own learning rate (the optimizer calls it).
        rate = self.lr if steps_per_run == 1 else lambda: learning_rate(
            self.global_step, max_learning_rate, min_learning_rate, decay_speed)
        optimizer = tf.compat.v1.train.AdamOptimizer(rate)
        self.train_op = optimizer.minimize(self.loss, global_step=self.global_step)
        tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.TRAIN_OP, self.train_op)
        self.run_losses = None
        if steps_per_run > 1:
            self.run_images = tf.compat.v1.placeholder(tf.float32, [None, None, 784],
                                                       name='run_images')
            self.run_labels = tf.compat.v1.placeholder(tf.int32, [None, None], name='run_labels')

            def step(i):  # the same variables and Adam slots as train_op's
                with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(), reuse=True):
                    loss = cross_entropy(deep_cnn(self.run_images[i], self.pkeep),
                                         self.run_labels[i])
                return loss, optimizer.minimize(loss, global_step=self.global_step)
            self.run_losses = training.in_graph_loop(tf.shape(self.run_labels)[0], step)
        with tf.compat.v1.name_scope('weights'):
            # Tagged and named 'weights/<variable>', as tf.compat.v1.summary.histogram did.
            self.histograms = tf.compat.v1.summary.merge(
                [summaries.histogram(v.op.name, v, in_scope=True, name=v.op.name)
                 for v in tf.compat.v1.trainable_variables()])


def train_step(sess, model, images, labels):
    """One training batch, with dropout (keep 0.75); returns its loss (before the update)."""
    _, loss = sess.run([model.train_op, model.loss],
                       {model.images: images, model.labels: labels, model.pkeep: 0.75})
    return loss


def train_steps(sess, model, batches):
    """Trains on each of batches ((images, labels) pairs) in turn, with dropout (keep 0.75):
    a Session.run each, or all in one through the in-graph loop of a model built with
    steps_per_run above 1. Returns their losses (each before its update)."""
    if model.run_losses is None:
        return [train_step(sess, model, images, labels) for images, labels in batches]
    images, labels = zip(*batches)
    return sess.run(model.run_losses, {model.run_images: images, model.run_labels: labels,
                                       model.pkeep: 0.75})


def steps_in_run(step, last, steps_per_run, *intervals):
    """How many training steps one run makes from `step`: up to steps_per_run, stopping at the
    next multiple of each of `intervals` (evaluations, checkpoints) and at `last`."""
    ends = [last] + [(step // n + 1) * n for n in intervals]
    return min([step + steps_per_run] + ends) - step if step < last else 0


def evaluate(sess, model, mnist, images, labels, writer, step):
    """Accuracy and loss of the training batch and of the test set at `step`: summaries (with
    the weight histograms) to writer and the printed line. Returns the test accuracy."""
    try:
        train_correct, train_loss, lr, hist = sess.run(
            [model.correct, model.loss, model.lr, model.histograms],
            {model.images: images, model.labels: labels})
    except tf.errors.InvalidArgumentError as e:  # a histogram of NaN weights
        raise training.divergence_in_summary(e, step) or e
    acc, loss = train_lib.evaluate(sess, model.correct, model.loss, model.images,
                                     model.labels, mnist.test)
    writer.add_summary(summaries.scalar_values({
        'train/accuracy': train_correct / len(labels), 'train/cross_entropy': train_loss,
        'test/accuracy': acc, 'test/cross_entropy': loss, 'learning_rate': lr}), step)
    writer.add_summary(hist, step)
    print('step %d: test accuracy %.4f, test loss %.2f, train accuracy %.2f, '
          'learning rate %.6f' % (step, acc, loss, train_correct / len(labels), lr), flush=True)
    return acc


def train(config, mnist):
    """Trains to config.max_steps batches, resuming from the latest checkpoint in
    config.log_dir; returns the final test accuracy."""
    model = Model(None, config.max_learning_rate, config.min_learning_rate, config.decay_speed,
                  config.steps_per_run)
    checkpoints = train_lib.Checkpoints(config.log_dir, mnist.train)
    session_config = training.set_precision(tf.compat.v1.ConfigProto(), config.precision)
    with tf.compat.v1.Session(config=session_config) as sess:
        start = checkpoints.restore_or_initialize(sess)  # 0, or the step of the checkpoint
        writer = tf.compat.v1.summary.FileWriter(config.log_dir,
                                                 tf.compat.v1.get_default_graph())
        train_lib.start_event_files([writer], start)
        last = max(start, config.max_steps)
        i = start
        try:
            while True:
                if i > start and (i % config.checkpoint_steps == 0 or i == last):
                    checkpoints.save(sess, i)
                # This run's batches (one, unless --steps_per_run): the first is also evaluated.
                count = steps_in_run(i, last, config.steps_per_run, config.eval_every,
                                     config.checkpoint_steps)
                batches = [mnist.train.next_batch(config.batch_size)
                           for _ in range(max(count, 1))]
                if i % config.eval_every == 0 or i == last:
                    acc = evaluate(sess, model, mnist, *batches[0], writer, i)
                if i == last:
                    break
                for j, loss in enumerate(train_steps(sess, model, batches)):
                    training.check_finite(loss, i + j)
                i += count
        except KeyboardInterrupt:  # Ctrl-C: keep the steps done (a second one: the last save)
            if i > start:
                checkpoints.save(sess, i)
            raise
    writer.close()
    print('Final test accuracy after %d batches: %.4f' % (last, acc), flush=True)
    return acc


def run(config, record):
    """Trains (or resumes) in config.log_dir on all 60,000 training images, as Görner did.
    record: the run's training.flags_record, saved in log_dir."""
    with train_lib.training_run(config, config.log_dir, 'log_dir', config.max_steps,
                                 'max_steps', record, VALIDATION_SIZE) as mnist:
        train(config, mnist)


def main(_):
    run(config_lib.from_flags(Config, FLAGS, 'mnist'), training.flags_record(FLAGS))


if __name__ == '__main__':
    entry.run(define_flags, main, 'max_learning_rate')
