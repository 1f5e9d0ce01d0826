"""Train the CIFAR-10 model on several GPUs (the tutorial's `cifar10_multi_gpu_train.py`).

    python cifar10/multi_gpu_train.py --num_gpus=2 --max_steps=60000
    python cifar10/eval.py --eval_interval_secs=27          # beside it

One input pipeline on the CPU feeds a prefetch queue; each tower `tower_%d` dequeues a batch,
computes its loss and gradients on its own device with the variables shared on the CPU; the
gradients are averaged and applied once, so a step with N towers trains on N * batch_size
images. With fewer GPUs than --num_gpus the towers run on logical CPU devices (one warning).
The towers are in cifar10/towers.py; the session config, run folder and monitored session
this shares with train.py in cifar10/trainer.py; the cluster in common/cluster.py.

The report's run (0.838 precision @ 1):
    python cifar10/multi_gpu_train.py --max_steps=60000 --checkpoint_steps=500 \
        --min_fraction_of_examples_in_queue=0.2
"""

from absl import flags
import common  # noqa: F401  (before TensorFlow: its CPU defaults, see common/__init__.py)
import tensorflow as tf

from cifar10 import inputs
from cifar10 import towers
from cifar10 import trainer
from common import cluster
from common import data
from common import entry
from common import training

FLAGS = flags.FLAGS


def training_graph(config, batches_dir, devices, wrap_optimizer=None):
    """The multi-tower graph, in the default graph: the global step, the input pipeline on the
    CPU feeding a prefetch queue, one tower per device (each dequeues a batch and computes its
    loss and gradients), the gradients averaged over the towers and applied once. Returns
    (train_op, the towers' losses, summary_op). Also what python -m bench builds."""
    global_step = tf.compat.v1.train.get_or_create_global_step()

    # Get images and labels for CIFAR-10, prefetched for the towers.
    images, labels = inputs.training_batches(batches_dir, config.batch_size,
                                             config.min_fraction_of_examples_in_queue,
                                             config.input_pipeline)
    batch_queue = towers.prefetch_queue([images, labels], capacity=2 * len(devices))

    # Calculate the gradients for each model tower, average them and apply them.
    return towers.build_towers([towers.dequeue_from(batch_queue)] * len(devices), devices,
                               global_step, config.hparams(), config.model, wrap_optimizer)


def train(config, record):
    """Train CIFAR-10 for a number of steps on config.num_gpus towers (as one worker of a
    cluster, if the cluster flags or TF_CONFIG say so). record: the run's flags_record."""
    devices, session_config = trainer.session_config(config, multi_tower=True)
    role = cluster.join(config.cluster, session_config)  # a ps task serves here, never returns
    trainer.check_done(config, role)
    batches_dir = data.maybe_download_and_extract_cifar10(config.data_dir)
    # The graph is built on the CPU (variables shared there) and each tower on its device.
    with trainer.run_folder(config, role, record), training.seeded_graph(config.seed), \
            role.graph_device('/cpu:0'):
        train_op, losses, summary_op = training_graph(config, batches_dir, devices,
                                                      role.wrap_optimizer)
        hooks = [trainer.step_logger(config, losses)]  # every tower's NaN check, the log line
        with trainer.monitored_session(config, role, session_config, hooks,
                                       summary_op) as mon_sess:
            while not mon_sess.should_stop():
                mon_sess.run(train_op)


def define_flags():
    trainer.define_flags()
    flags.DEFINE_integer('num_gpus', trainer.DEFAULTS.num_gpus, 'How many GPUs (towers) to use.',
                         lower_bound=1)


def main(argv):
    del argv
    train(trainer.from_flags(FLAGS), training.flags_record(FLAGS))


if __name__ == '__main__':
    entry.run(define_flags, main, 'initial_learning_rate', errors=(cluster.ClusterError,))
