"""The report's main MNIST solution: 3 conv layers + TensorBoard (Görner's model 3.1 style).

    python mnist/deep_cnn.py                          # 10,000 batches of 100
    tensorboard --logdir /tmp/mnist_deep_cnn

conv 6x6 stride 1 -> 6 channels, 5x5 stride 2 -> 12, 4x4 stride 2 -> 24, dense 200 relu with
dropout (keep 0.75), softmax; weights truncated normal (stddev 0.1), biases 0.1; Adam with
learning rate 0.0001 + 0.0029 * exp(-step / 2000); batches of 100 in shuffled epochs of all
60,000 training images (Görner's loaders kept no validation set). Every --eval_every batches:
train and test accuracy/loss scalars and weight/bias histograms to TensorBoard, and the test
accuracy printed. Report: 0.9926 after 10,000 batches (Görner: 0.9928-0.9931).
"""


from absl import app
from absl import flags
import common  # noqa: F401  (before TensorFlow: its CPU defaults, see common/__init__.py)
import tensorflow as tf

from common import mnist_input
from common import training

FLAGS = flags.FLAGS

# Görner's model 3.1 trained on all 60,000 training images: his loaders kept no validation
# set (input_data.read_data_sets(..., validation_size=0), later his own mnistdata.read_data_sets).
VALIDATION_SIZE = 0


def define_flags():
    flags.DEFINE_integer('max_steps', 10000, 'Number of training batches.', lower_bound=0)
    flags.DEFINE_integer('batch_size', 100, 'Training batch size.', lower_bound=1)
    training.define_log_dir_flag('/tmp/mnist_deep_cnn', 'Summaries and checkpoint directory.')
    flags.DEFINE_string('data_dir', '/tmp/mnist_data',
                        'MNIST folder (default: $TF_CLASSICS_DATA/mnist when that is set).')
    flags.DEFINE_integer('eval_every', 100, 'Test accuracy and summaries every this many batches.',
                         lower_bound=1)
    flags.DEFINE_integer('seed', None, 'Graph-level and shuffling seed.')


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


def learning_rate(step):
    """0.0001 + 0.0029 * exp(-step / 2000): from 0.003 down to 0.0001."""
    return 0.0001 + 0.0029 * tf.exp(-tf.cast(step, tf.float32) / 2000.0)


class Model(object):
    def __init__(self, inputs=None):
        """inputs: (images, labels) tensors to use instead of the placeholders (the benchmark's
        in-memory batch)."""
        if inputs is None:
            self.images = tf.compat.v1.placeholder(tf.float32, [None, 784], name='images')
            self.labels = tf.compat.v1.placeholder(tf.int32, [None], name='labels')
        else:
            self.images, self.labels = inputs
        self.pkeep = tf.compat.v1.placeholder_with_default(1.0, [], name='pkeep')
        self.global_step = tf.compat.v1.train.get_or_create_global_step()
        logits = deep_cnn(self.images, self.pkeep)
        # Görner's cross entropy: mean over the batch, times 100 ("per 100 images").
        self.loss = 100.0 * tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=self.labels, logits=logits))
        self.correct = tf.reduce_sum(tf.cast(
            tf.equal(tf.argmax(logits, 1, output_type=tf.int32), self.labels), tf.float32))
        self.lr = learning_rate(self.global_step)
        self.train_op = tf.compat.v1.train.AdamOptimizer(self.lr).minimize(
            self.loss, global_step=self.global_step)
        with tf.compat.v1.name_scope('weights'):
            self.histograms = tf.compat.v1.summary.merge(
                [tf.compat.v1.summary.histogram(v.op.name, v)
                 for v in tf.compat.v1.trainable_variables()])


def _scalars(**values):
    return tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(tag=k, simple_value=float(v))
                                       for k, v in values.items()])


def train_step(sess, model, images, labels):
    """One training batch, with dropout (keep 0.75)."""
    sess.run(model.train_op, {model.images: images, model.labels: labels, model.pkeep: 0.75})


def train(mnist):
    """Trains --max_steps batches; returns the final test accuracy."""
    model = Model()
    saver = tf.compat.v1.train.Saver()
    writer = tf.compat.v1.summary.FileWriter(FLAGS.log_dir, tf.compat.v1.get_default_graph())
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        for i in range(FLAGS.max_steps + 1):
            images, labels = mnist.train.next_batch(FLAGS.batch_size)
            if i % FLAGS.eval_every == 0 or i == FLAGS.max_steps:
                train_correct, train_loss, lr, hist = sess.run(
                    [model.correct, model.loss, model.lr, model.histograms],
                    {model.images: images, model.labels: labels})
                acc, loss = mnist_input.evaluate(sess, model.correct, model.loss, model.images,
                                                 model.labels, mnist.test)
                writer.add_summary(_scalars(**{
                    'train/accuracy': train_correct / len(labels), 'train/cross_entropy':
                    train_loss, 'test/accuracy': acc, 'test/cross_entropy': loss,
                    'learning_rate': lr}), i)
                writer.add_summary(hist, i)
                print('step %d: test accuracy %.4f, test loss %.2f, train accuracy %.2f, '
                      'learning rate %.6f' % (i, acc, loss, train_correct / len(labels), lr),
                      flush=True)
            if i == FLAGS.max_steps:
                break
            train_step(sess, model, images, labels)
        saver.save(sess, FLAGS.log_dir + '/model.ckpt', global_step=FLAGS.max_steps)
    writer.close()
    print('Final test accuracy after %d batches: %.4f' % (FLAGS.max_steps, acc), flush=True)
    return acc


def main(argv):
    del argv
    mnist = mnist_input.read_data_sets_for(FLAGS, seed=FLAGS.seed,
                                           validation_size=VALIDATION_SIZE)
    training.prepare_train_dir(FLAGS.log_dir, fresh=True)
    training.save_flags(FLAGS.log_dir, FLAGS)
    with tf.Graph().as_default():
        if FLAGS.seed is not None:
            tf.compat.v1.set_random_seed(FLAGS.seed)
        train(mnist)


if __name__ == '__main__':
    define_flags()
    app.run(main)
