"""The CIFAR-10 model, as the tutorial's `cifar10.py`: inference, loss and train.

    logits = inference(images)     # conv1 pool1 norm1 conv2 norm2 pool2 local3 local4 softmax_linear
    total_loss = loss(logits, labels)   # cross entropy + L2 weight decay ('losses' collection)
    train_op = train(total_loss, global_step, Hyperparameters(batch_size=128))

1,068,298 parameters. Variables live on the CPU (so that several GPU towers share them), with the
original initialisers, biases and weight decays. Nothing here reads flags: the scripts pass them.
`ModelFlags` (the flags that change the model's variables) and `Hyperparameters` (the optimiser's)
are the typed values they pass.
"""

import dataclasses
import re

import tensorflow as tf

from cifar10 import inputs
from common import config as config_lib
from common import summaries

NUM_CLASSES = inputs.NUM_CLASSES
NUM_EXAMPLES_PER_EPOCH_FOR_TRAIN = inputs.NUM_EXAMPLES_PER_EPOCH_FOR_TRAIN

MOVING_AVERAGE_DECAY = 0.9999     # decay of the variable moving averages the evaluator restores
NUM_EPOCHS_PER_DECAY = 350.0      # epochs after which the learning rate decays
LEARNING_RATE_DECAY_FACTOR = 0.1  # learning rate decay factor
INITIAL_LEARNING_RATE = 0.1       # initial learning rate

TOWER_NAME = 'tower'


@dataclasses.dataclass(frozen=True)
class ModelFlags:
    """The flags that change the model's variables: a checkpoint is of one ModelFlags (the
    trainers', the evaluator's and predict.py's --conv21 and --use_fp16)."""
    conv21: bool = config_lib.flag(False, 'Add the report\'s third conv layer conv21 '
                                          '(optimiser case 1).')
    use_fp16: bool = config_lib.flag(False, 'Train the model using fp16.')

    def as_dict(self):
        return dataclasses.asdict(self)


MODEL_FLAGS = tuple(f.name for f in dataclasses.fields(ModelFlags))


def batch_size_flag():
    """--batch_size: the trainers' and the evaluator's."""
    return config_lib.flag(128, 'Number of images to process in a batch.', lower_bound=1)


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """What train() and the towers need to build the optimiser: the batch size (one tower's)
    sets the decay schedule's steps per epoch."""
    batch_size: int = 128
    optimizer: str = 'sgd'  # or 'adam' (the report's cases 1-3)
    initial_learning_rate: float = INITIAL_LEARNING_RATE
    decay_factor: float = LEARNING_RATE_DECAY_FACTOR
    num_epochs_per_decay: float = NUM_EPOCHS_PER_DECAY


def _strip_tower(name):
    return re.sub('%s_[0-9]*/' % TOWER_NAME, '', name)


def _activation_summary(x):
    """Histogram `<name>/activations` and scalar `<name>/sparsity`, tower prefix stripped."""
    tensor_name = _strip_tower(x.op.name)
    summaries.histogram(tensor_name + '/activations', x)
    summaries.scalar(tensor_name + '/sparsity', tf.nn.zero_fraction(x))


def _variable_on_cpu(name, shape, initializer, dtype):
    with tf.device('/cpu:0'):
        return tf.compat.v1.get_variable(name, shape, initializer=initializer, dtype=dtype)


def _variable_with_weight_decay(name, shape, stddev, wd, dtype):
    """A truncated-normal variable; adds wd * l2_loss(var) to the 'losses' collection unless wd
    is None (the original adds it for wd=0.0 too: a `weight_loss` term of 0)."""
    var = _variable_on_cpu(
        name, shape, tf.compat.v1.truncated_normal_initializer(stddev=stddev, dtype=dtype), dtype)
    if wd is not None:
        weight_decay = tf.multiply(tf.nn.l2_loss(var), wd, name='weight_loss')
        tf.compat.v1.add_to_collection('losses', weight_decay)
    return var


def _conv_relu(scope_name, inputs_, in_depth, dtype, bias):
    with tf.compat.v1.variable_scope(scope_name) as scope:
        kernel = _variable_with_weight_decay('weights', [5, 5, in_depth, 64], stddev=5e-2, wd=0.0,
                                             dtype=dtype)
        conv = tf.nn.conv2d(inputs_, kernel, [1, 1, 1, 1], padding='SAME')
        biases = _variable_on_cpu('biases', [64], tf.compat.v1.constant_initializer(bias), dtype)
        out = tf.nn.relu(tf.nn.bias_add(conv, biases), name=scope.name)
        _activation_summary(out)
        return out


def _pool(x, name):
    return tf.nn.max_pool2d(x, ksize=[1, 3, 3, 1], strides=[1, 2, 2, 1], padding='SAME', name=name)


def _norm(x, name):
    return tf.nn.lrn(x, 4, bias=1.0, alpha=0.001 / 9.0, beta=0.75, name=name)


def _local(scope_name, x, in_dim, out_dim, stddev, wd, bias, dtype, relu=True):
    with tf.compat.v1.variable_scope(scope_name) as scope:
        weights = _variable_with_weight_decay('weights', [in_dim, out_dim], stddev=stddev, wd=wd,
                                              dtype=dtype)
        biases = _variable_on_cpu('biases', [out_dim], tf.compat.v1.constant_initializer(bias),
                                  dtype)
        if relu:
            out = tf.nn.relu(tf.matmul(x, weights) + biases, name=scope.name)
        else:
            out = tf.add(tf.matmul(x, weights), biases, name=scope.name)
        _activation_summary(out)
        return out


def inference(images, use_fp16=False, conv21=False):
    """Builds the CIFAR-10 model.

    Args:
      images: float32 [batch, 24, 24, 3], from inputs.distorted_inputs or inputs.inputs.
      use_fp16: keep variables and activations in float16 (the original flag).
      conv21: the report's optimiser case 1: a third conv layer `conv21`, identical to conv2;
        conv2's pool and norm are swapped (pool then norm, as after conv1) to match.
    Returns:
      logits float32 [batch, NUM_CLASSES] (not softmaxed).
    """
    dtype = tf.float16 if use_fp16 else tf.float32
    images = tf.cast(images, dtype)
    conv1 = _conv_relu('conv1', images, 3, dtype, bias=0.0)
    pool1 = _pool(conv1, 'pool1')
    norm1 = _norm(pool1, 'norm1')
    conv2 = _conv_relu('conv2', norm1, 64, dtype, bias=0.1)
    if conv21:
        pool2 = _pool(conv2, 'pool2')
        norm2 = _norm(pool2, 'norm2')
        conv = _conv_relu('conv21', norm2, 64, dtype, bias=0.1)
        norm21 = _norm(conv, 'norm21')
        last = _pool(norm21, 'pool21')
    else:
        norm2 = _norm(conv2, 'norm2')
        last = _pool(norm2, 'pool2')

    dim = last.get_shape()[1] * last.get_shape()[2] * last.get_shape()[3]
    reshape = tf.reshape(last, [-1, dim])
    local3 = _local('local3', reshape, dim, 384, stddev=0.04, wd=0.004, bias=0.1, dtype=dtype)
    local4 = _local('local4', local3, 384, 192, stddev=0.04, wd=0.004, bias=0.1, dtype=dtype)
    softmax_linear = _local('softmax_linear', local4, 192, NUM_CLASSES, stddev=1 / 192.0, wd=0.0,
                            bias=0.0, dtype=dtype, relu=False)
    return tf.cast(softmax_linear, tf.float32)


def loss(logits, labels, scope=None):
    """Adds the mean cross entropy to the 'losses' collection; returns the collection's sum.

    With `scope` (a tower's name scope) only that tower's losses are summed.
    """
    labels = tf.cast(labels, tf.int64)
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits, name='cross_entropy_per_example')
    cross_entropy_mean = tf.reduce_mean(cross_entropy, name='cross_entropy')
    tf.compat.v1.add_to_collection('losses', cross_entropy_mean)
    losses = [tf.cast(l, tf.float32) for l in tf.compat.v1.get_collection('losses', scope)]
    return tf.add_n(losses, name='total_loss')


def add_loss_summaries(total_loss, scope=None):
    """Moving averages (decay 0.9) of each loss and the total; scalars `<name> (raw)`, `<name>`.

    Returns the op that updates the averages.
    """
    loss_averages = tf.compat.v1.train.ExponentialMovingAverage(0.9, name='avg')
    losses = tf.compat.v1.get_collection('losses', scope)
    losses = [l for l in losses if l.dtype == tf.float32]
    loss_averages_op = loss_averages.apply(losses + [total_loss])
    for l in losses + [total_loss]:
        name = _strip_tower(l.op.name)
        summaries.scalar(name + ' (raw)', l)
        summaries.scalar(name, loss_averages.average(l))
    return loss_averages_op


def learning_rate(global_step, batch_size, initial_learning_rate=INITIAL_LEARNING_RATE,
                  decay_factor=LEARNING_RATE_DECAY_FACTOR,
                  num_epochs_per_decay=NUM_EPOCHS_PER_DECAY):
    """Staircase exponential decay; with the defaults and batch 128 it first decays at 136,718."""
    num_batches_per_epoch = NUM_EXAMPLES_PER_EPOCH_FOR_TRAIN / batch_size
    decay_steps = int(num_batches_per_epoch * num_epochs_per_decay)
    return tf.compat.v1.train.exponential_decay(initial_learning_rate, global_step, decay_steps,
                                                decay_factor, staircase=True)


def optimizer(name, lr):
    """'sgd' (the tutorial's plain gradient descent) or 'adam' (the report's cases 1-3)."""
    if name == 'sgd':
        return tf.compat.v1.train.GradientDescentOptimizer(lr)
    if name == 'adam':
        return tf.compat.v1.train.AdamOptimizer(lr)
    raise ValueError('optimizer must be sgd or adam, got %r' % name)


def apply_gradients(opt, grads, global_step):
    """Applies grads, adds gradient/variable histograms and the variable moving averages.

    Returns (train_op, summaries): train_op increments global_step; summaries are the histogram
    summary ops it made.
    """
    apply_gradient_op = opt.apply_gradients(grads, global_step=global_step)
    histograms = []
    for var in tf.compat.v1.trainable_variables():
        histograms.append(summaries.histogram(var.op.name, var))
    for grad, var in grads:
        if grad is not None:
            histograms.append(summaries.histogram(var.op.name + '/gradients', grad))
    variable_averages = tf.compat.v1.train.ExponentialMovingAverage(MOVING_AVERAGE_DECAY,
                                                                    global_step)
    with tf.control_dependencies([apply_gradient_op]):
        variables_averages_op = variable_averages.apply(tf.compat.v1.trainable_variables())
    train_op = tf.group(apply_gradient_op, variables_averages_op, name='train')
    # Saved in the .meta: a restored graph (import_meta_graph) finds its train op there.
    tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.TRAIN_OP, train_op)
    return train_op, histograms


def train(total_loss, global_step, hparams):
    """The single-device train op: one optimiser step plus moving averages. Returns train_op.

    hparams: a Hyperparameters."""
    lr = learning_rate(global_step, hparams.batch_size, hparams.initial_learning_rate,
                       hparams.decay_factor, hparams.num_epochs_per_decay)
    summaries.scalar('learning_rate', lr)
    loss_averages_op = add_loss_summaries(total_loss)
    with tf.control_dependencies([loss_averages_op]):
        opt = optimizer(hparams.optimizer, lr)
        grads = opt.compute_gradients(total_loss)
    train_op, _ = apply_gradients(opt, grads, global_step)
    return train_op


def variables_to_restore():
    """The moving-average shadows of the trained variables, named as the variables (for eval)."""
    return tf.compat.v1.train.ExponentialMovingAverage(MOVING_AVERAGE_DECAY).variables_to_restore()
