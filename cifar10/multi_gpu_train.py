"""Train the CIFAR-10 model on several GPUs (the tutorial's `cifar10_multi_gpu_train.py`).

    python cifar10/multi_gpu_train.py --num_gpus=2 --max_steps=60000
    python cifar10/eval.py --eval_interval_secs=27          # beside it

One input pipeline on the CPU feeds a prefetch queue; each tower `tower_%d` dequeues a batch,
computes its loss and gradients on its own device with the variables shared on the CPU; the
gradients are averaged and applied once, so a step with N towers trains on N * batch_size
images. With fewer GPUs than --num_gpus the towers run on logical CPU devices (one warning
for two towers or more).
The tower loop is training_graph() below; the session config, the run folder and the
monitored session it shares with train.py are in cifar10/train_lib.py. For several machines
(ps tasks and workers): cifar10/dist_train.py.

The report's run (0.838 precision @ 1):
    python cifar10/multi_gpu_train.py --max_steps=60000 --checkpoint_steps=500 \\
        --min_fraction_of_examples_in_queue=0.2
"""

from absl import flags
import common
common.before_tensorflow()  # oneDNN kernels, TensorFlow's log lines: common/__init__.py
import tensorflow as tf

from cifar10 import inputs
from cifar10 import model
from cifar10 import train_lib
from common import data
from common import entry
from common import summaries
from common import training

FLAGS = flags.FLAGS


def tower_loss(scope, images, labels, model_flags=model.ModelFlags(), summarize=True):
    """One tower's total loss (its cross entropy + weight decay).

    Args:
      scope: the tower's name scope, e.g. 'tower_0/'; selects this tower's 'losses'.
      model_flags: the model.ModelFlags (--conv21, --use_fp16).
      summarize: also keep moving averages of the losses, with their summaries (the trainer
        summarises the last tower only).
    """
    logits = model.inference(images, model_flags.use_fp16, model_flags.conv21)
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


def training_graph(config, images, labels, devices, wrap_optimizer=None):
    """The tutorial's multi-tower graph, in the default graph (build it under /cpu:0): the
    batches `images`, `labels` go through a prefetch queue; one tower per device dequeues a
    batch and computes its loss and gradients; the gradients are averaged over the towers and
    applied once, with the variables' moving averages. wrap_optimizer, if given, wraps the
    optimiser (dist_train.py's SyncReplicasOptimizer).

    Returns (train_op, the towers' losses (the last tower's is the one logged), summary_op)."""
    global_step = tf.compat.v1.train.get_or_create_global_step()
    batch_queue = train_lib.prefetch_queue([images, labels], capacity=2 * len(devices))
    hparams = config.hparams()
    lr = model.learning_rate(global_step, hparams.batch_size, hparams.initial_learning_rate,
                             hparams.decay_factor, hparams.num_epochs_per_decay)
    opt = model.optimizer(hparams.optimizer, lr)
    if wrap_optimizer:
        opt = wrap_optimizer(opt)

    # Calculate the gradients for each model tower.
    tower_grads, losses = [], []
    with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope()):
        for i, device in enumerate(devices):
            with tf.device(device):
                with tf.compat.v1.name_scope('%s_%d' % (model.TOWER_NAME, i)) as scope:
                    # Dequeues one batch for the tower (the queue lives on the CPU).
                    with tf.device('/cpu:0'):
                        image_batch, label_batch = batch_queue.dequeue()
                    # The loss for one tower of the model; all towers share the variables.
                    loss = tower_loss(scope, image_batch, label_batch, config.model,
                                      summarize=(i == len(devices) - 1))
                    losses.append(loss)
                    # Reuse variables for the next tower.
                    tf.compat.v1.get_variable_scope().reuse_variables()
                    # Retain the summaries from the final tower.
                    tower_summaries = tf.compat.v1.get_collection(
                        tf.compat.v1.GraphKeys.SUMMARIES, scope)
                    # The gradients for the batch of data on this tower.
                    tower_grads.append(opt.compute_gradients(loss))

    # The mean of each gradient: the synchronisation point across all towers.
    grads = average_gradients(tower_grads)
    tower_summaries.append(summaries.scalar('learning_rate', lr))
    # Apply the gradients, with their histograms and the variables' moving averages.
    train_op, histograms = model.apply_gradients(opt, grads, global_step)
    # The summaries made outside the towers (input images, queue fill) are kept too.
    taken = {s.name for s in tower_summaries + histograms}
    shared = [s for s in tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.SUMMARIES)
              if not s.op.name.startswith(model.TOWER_NAME + '_') and s.name not in taken]
    summary_op = tf.compat.v1.summary.merge(tower_summaries + histograms + shared)
    return train_op, losses, summary_op


def training_graph_from_files(config, batches_dir, devices, wrap_optimizer=None):
    """training_graph on the training input of the data_batch_*.bin files in batches_dir
    (config's batch size, queue fraction and --input_pipeline), the global step made first.
    What train(), dist_train.py and python -m bench build."""
    tf.compat.v1.train.get_or_create_global_step()
    # Get images and labels for CIFAR-10.
    images, labels = inputs.training_batches(batches_dir, config.batch_size,
                                             config.min_fraction_of_examples_in_queue,
                                             config.input_pipeline)
    return training_graph(config, images, labels, devices, wrap_optimizer)


def train(config, record):
    """Train CIFAR-10 for a number of steps on config.num_gpus towers. record: the run's
    training.flags_record, saved in --train_dir."""
    devices, session_config = train_lib.tower_session_config(config)
    train_lib.check_done(config)
    batches_dir = data.maybe_download_and_extract_cifar10(config.data_dir)
    # The graph is built on the CPU (variables shared there) and each tower on its device.
    with train_lib.run_folder(config, record), training.seeded_graph(config.seed), \
            tf.device('/cpu:0'):
        train_op, losses, summary_op = training_graph_from_files(config, batches_dir, devices)

        hooks = [train_lib.step_logger(config, losses)]  # every tower's NaN check, the log line
        with train_lib.monitored_session(config, session_config, hooks,
                                         summary_op) as mon_sess:
            while not mon_sess.should_stop():
                mon_sess.run(train_op)


def define_flags():
    train_lib.define_flags()
    flags.DEFINE_integer('num_gpus', train_lib.DEFAULTS.num_gpus, 'How many GPUs (towers) to use.',
                         lower_bound=1)


def main(argv):
    del argv
    train(train_lib.from_flags(FLAGS), training.flags_record(FLAGS))


if __name__ == '__main__':
    entry.run(define_flags, main, 'initial_learning_rate')
