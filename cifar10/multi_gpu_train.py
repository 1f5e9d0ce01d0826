"""Train the CIFAR-10 model on several GPUs (the tutorial's `cifar10_multi_gpu_train.py`).

    python cifar10/multi_gpu_train.py --num_gpus=2 --max_steps=60000
    python cifar10/eval.py --eval_interval_secs=27          # beside it

One input pipeline on the CPU feeds a prefetch queue; each tower `tower_%d` dequeues a batch,
computes its loss and gradients on its own device with the variables shared on the CPU; the
gradients are averaged and applied once, so a step with N towers trains on N * batch_size
images. With fewer GPUs than --num_gpus the towers run on logical CPU devices (one warning).

The report's run (0.838 precision @ 1):
    python cifar10/multi_gpu_train.py --max_steps=60000 --checkpoint_steps=500 \
        --min_fraction_of_examples_in_queue=0.2
"""


from absl import app
from absl import flags
import common  # noqa: F401  (before TensorFlow: its CPU defaults, see common/__init__.py)
import tensorflow as tf

from cifar10 import inputs
from cifar10 import model
from cifar10 import train as single
from common import data
from common import summaries as common_summaries
from common import training

FLAGS = flags.FLAGS


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


def build_towers(tower_inputs, devices, global_step, batch_size, optimizer_name='sgd',
                 initial_learning_rate=model.INITIAL_LEARNING_RATE,
                 decay_factor=model.LEARNING_RATE_DECAY_FACTOR,
                 num_epochs_per_decay=model.NUM_EPOCHS_PER_DECAY, use_fp16=False, conv21=False,
                 wrap_optimizer=None):
    """Builds one tower per device and the averaged-gradient train op.

    Args:
      tower_inputs: one (images, labels) pair per tower, or a callable returning one.
      devices: one device string per tower.
      wrap_optimizer: if given, wraps the optimiser (e.g. in a SyncReplicasOptimizer).
    Returns:
      (train_op, the towers' losses (one per tower; the last tower's is the one logged),
      summary_op).
    """
    lr = model.learning_rate(global_step, batch_size, initial_learning_rate, decay_factor,
                             num_epochs_per_decay)
    opt = model.optimizer(optimizer_name, lr)
    if wrap_optimizer:
        opt = wrap_optimizer(opt)
    tower_grads, losses = [], []
    with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope()):
        for i, device in enumerate(devices):
            with tf.device(device), \
                    tf.compat.v1.name_scope('%s_%d' % (model.TOWER_NAME, i)) as scope:
                pair = tower_inputs[i]
                images, labels = pair() if callable(pair) else pair
                loss = tower_loss(scope, images, labels, use_fp16, conv21,
                                  summarize=(i == len(devices) - 1))
                losses.append(loss)
                tf.compat.v1.get_variable_scope().reuse_variables()
                # Summaries from the last tower only.
                summaries = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.SUMMARIES, scope)
                tower_grads.append(opt.compute_gradients(loss))
    grads = training.average_gradients(tower_grads)
    summaries.append(common_summaries.scalar('learning_rate', lr))
    train_op, histograms = model.apply_gradients(opt, grads, global_step)
    # Summaries made outside the towers (input images, queue fill) are kept too.
    taken = {s.name for s in summaries + histograms}
    shared = [s for s in tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.SUMMARIES)
              if not s.op.name.startswith(model.TOWER_NAME + '_') and s.name not in taken]
    summary_op = tf.compat.v1.summary.merge(summaries + histograms + shared)
    return train_op, losses, summary_op


def train():
    """Builds the multi-tower graph on the CPU and trains it (as one worker of a cluster, if
    the cluster flags or TF_CONFIG say so)."""
    tower_devices = []

    def session_config():
        devices, config = training.tower_devices(FLAGS.num_gpus, FLAGS.log_device_placement)
        tower_devices.extend(devices)
        return single.with_xla(config)

    cl, server, config = single.join_cluster(session_config)
    devices = tower_devices
    batches_dir = single.cifar10_data_dir()
    single.start_train_dir(cl)
    wrapped = []
    # Tower devices carry no job: in a cluster the replica device setter completes them with
    # this worker, and sends the variables (pinned to /cpu:0) to the ps tasks.
    with tf.Graph().as_default(), single.graph_device(cl, '/cpu:0'):
        train_op, losses, summary_op = build_training_graph(
            batches_dir, devices, single.sync_optimizer_wrapper(cl, wrapped))
        single.run_training(train_op, losses[-1], config, FLAGS.num_gpus, summary_op, cl=cl,
                            server=server, sync_opt=wrapped[0] if wrapped else None,
                            tower_losses=losses)


def build_training_graph(batches_dir, devices, wrap_optimizer=None):
    """The trainer's graph from its flags: global step, input pipeline, prefetch queue and one
    tower per device. Returns (train_op, the towers' losses, summary_op)."""
    if FLAGS.seed is not None:
        tf.compat.v1.set_random_seed(FLAGS.seed)
    global_step = tf.compat.v1.train.get_or_create_global_step()
    images, labels = single.training_inputs(batches_dir)
    batch_queue = prefetch_queue([images, labels], capacity=2 * len(devices))

    def dequeue():
        with tf.device('/cpu:0'):  # the queue lives on the CPU
            return batch_queue.dequeue()

    return build_towers([dequeue] * len(devices), devices, global_step,
                        use_fp16=FLAGS.use_fp16, conv21=FLAGS.conv21,
                        wrap_optimizer=wrap_optimizer, **single.hparams())


def define_flags():
    single.define_flags()
    flags.DEFINE_integer('num_gpus', 1, 'How many GPUs (towers) to use.', lower_bound=1)


if __name__ == '__main__':
    define_flags()
    app.run(single.main_for(train))
