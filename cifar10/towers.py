"""The multi-GPU trainer's towers (the original cifar10_multi_gpu_train.py's tower_loss and
average_gradients): one copy of the model per device, sharing its variables, each on its own
batch; the gradients averaged over the towers and applied once.

With fewer GPUs than towers the towers run on logical CPU devices (tower_devices), so that
this code path runs, and is tested, on a CPU-only machine.
"""

import sys

import tensorflow as tf

from cifar10 import inputs
from cifar10 import model
from common import summaries as common_summaries


def tower_devices(num_towers, log_device_placement=False, split_gpu_mb=None):
    """Chooses a device per tower and the session config that makes those devices exist.

    Towers go to /gpu:0..N-1 when that many GPUs are visible. With split_gpu_mb and one GPU,
    the card is split into N virtual GPUs of that many MB each (bench/gpu.py's two towers on
    one card). Otherwise they go to N logical CPU devices (/cpu:0..N-1,
    `ConfigProto(device_count={'CPU': N})`), with one warning line. Soft placement stays off
    there: it would silently put every tower on /cpu:0.

    Returns (devices, session_config).
    """
    gpus = tf.config.list_physical_devices('GPU')
    split = split_gpu_mb and len(gpus) == 1 and num_towers > 1
    if len(gpus) >= num_towers or split:
        devices = ['/gpu:%d' % i for i in range(num_towers)]
        session_config = tf.compat.v1.ConfigProto(allow_soft_placement=True,
                                                  log_device_placement=log_device_placement)
        if split:
            session_config.gpu_options.experimental.virtual_devices.add().memory_limit_mb.extend(
                [split_gpu_mb] * num_towers)
        else:
            # Take GPU memory as needed, so that eval.py runs beside training on the same card.
            session_config.gpu_options.allow_growth = True
        return devices, session_config
    print('WARNING: %d GPU(s) visible for %d tower(s): running the towers on %d logical CPU '
          'device(s) instead' % (len(gpus), num_towers, num_towers), file=sys.stderr, flush=True)
    devices = ['/cpu:%d' % i for i in range(num_towers)]
    session_config = tf.compat.v1.ConfigProto(device_count={'CPU': num_towers},
                                              allow_soft_placement=False,
                                              log_device_placement=log_device_placement)
    return devices, session_config


def tower_loss(scope, images, labels, use_fp16=False, conv21=False, summarize=True):
    """One tower's total loss (its cross entropy + weight decay).

    Args:
      scope: the tower's name scope, e.g. 'tower_0/'; selects this tower's 'losses'.
      summarize: also keep moving averages of the losses, with their summaries (the trainers
        summarise the last tower only).
    """
    logits = model.inference(images, use_fp16, conv21)
    total_loss = model.loss(logits, labels, scope)
    if not summarize:
        return total_loss
    # The towers after the first reuse the model's variables; the averages are new ones.
    with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(),
                                     reuse=tf.compat.v1.AUTO_REUSE):
        loss_averages_op = model.add_loss_summaries(total_loss, scope)
    with tf.control_dependencies([loss_averages_op]):
        return tf.identity(total_loss)


def average_gradients(tower_grads):
    """Averages each variable's gradient over the towers.

    Args:
      tower_grads: one list of (gradient, variable) per tower, variables in the same order.
    Returns:
      a list of (mean gradient, variable): the mean over towers of each variable's gradient.
    """
    average_grads = []
    for grad_and_vars in zip(*tower_grads):
        grads = [tf.expand_dims(g, 0) for g, _ in grad_and_vars]
        grad = tf.reduce_mean(tf.concat(grads, 0), 0)
        average_grads.append((grad, grad_and_vars[0][1]))
    return average_grads


def prefetch_queue(tensors, capacity):
    """A FIFOQueue that a queue-runner thread keeps filled with `tensors` (tf.contrib's
    prefetch_queue is gone). Returns the queue."""
    queue = tf.queue.FIFOQueue(capacity, dtypes=[t.dtype for t in tensors],
                               shapes=[t.shape for t in tensors], name='batch_queue')
    tf.compat.v1.train.add_queue_runner(
        tf.compat.v1.train.QueueRunner(queue, [queue.enqueue(tensors)]))
    tf.compat.v1.summary.scalar('queue/batch_queue/fraction_of_%d_full' % capacity,
                                tf.cast(queue.size(), tf.float32) / capacity)
    return queue


def build_towers(tower_inputs, devices, global_step, hparams, model_flags=model.Model(),
                 wrap_optimizer=None):
    """Builds one tower per device and the averaged-gradient train op.

    Args:
      tower_inputs: one (images, labels) pair per tower, or a callable returning one.
      devices: one device string per tower.
      hparams: the optimiser's model.Hyperparameters (batch_size: one tower's).
      model_flags: the model.Model (--conv21, --use_fp16).
      wrap_optimizer: if given, wraps the optimiser (e.g. in a SyncReplicasOptimizer).
    Returns:
      (train_op, the towers' losses (one per tower; the last tower's is the one logged),
      summary_op).
    """
    lr = model.learning_rate(global_step, hparams.batch_size, hparams.initial_learning_rate,
                             hparams.decay_factor, hparams.num_epochs_per_decay)
    opt = model.optimizer(hparams.optimizer, lr)
    if wrap_optimizer:
        opt = wrap_optimizer(opt)
    tower_grads, losses = [], []
    with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope()):
        for i, device in enumerate(devices):
            with tf.device(device), \
                    tf.compat.v1.name_scope('%s_%d' % (model.TOWER_NAME, i)) as scope:
                pair = tower_inputs[i]
                images, labels = pair() if callable(pair) else pair
                loss = tower_loss(scope, images, labels, model_flags.use_fp16,
                                  model_flags.conv21, summarize=(i == len(devices) - 1))
                losses.append(loss)
                tf.compat.v1.get_variable_scope().reuse_variables()
                # Summaries from the last tower only.
                summaries = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.SUMMARIES, scope)
                tower_grads.append(opt.compute_gradients(loss))
    grads = average_gradients(tower_grads)
    summaries.append(common_summaries.scalar('learning_rate', lr))
    train_op, histograms = model.apply_gradients(opt, grads, global_step)
    # Summaries made outside the towers (input images, queue fill) are kept too.
    taken = {s.name for s in summaries + histograms}
    shared = [s for s in tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.SUMMARIES)
              if not s.op.name.startswith(model.TOWER_NAME + '_') and s.name not in taken]
    summary_op = tf.compat.v1.summary.merge(summaries + histograms + shared)
    return train_op, losses, summary_op


def dequeue_from(batch_queue):
    """A tower's input: a batch from the prefetch queue, dequeued on the CPU where it lives."""
    def dequeue():
        with tf.device('/cpu:0'):
            return batch_queue.dequeue()
    return dequeue
