"""Train the CIFAR-10 model on several GPUs (the tutorial's `cifar10_multi_gpu_train.py`).

    python cifar10/multi_gpu_train.py --num_gpus=2 --max_steps=60000
    python cifar10/eval.py --eval_interval_secs=27          # beside it

One input pipeline on the CPU feeds a prefetch queue; each tower `tower_%d` dequeues a batch,
computes its loss and gradients on its own device with the variables shared on the CPU; the
gradients are averaged and applied once, so a step with N towers trains on N * batch_size
images. With fewer GPUs than --num_gpus the towers run on logical CPU devices (one warning).
The towers are in cifar10/towers.py; the session, hooks, cluster and train_dir handling this
shares with train.py in cifar10/trainer.py.

The report's run (0.838 precision @ 1):
    python cifar10/multi_gpu_train.py --max_steps=60000 --checkpoint_steps=500 \
        --min_fraction_of_examples_in_queue=0.2
"""

from absl import app
from absl import flags
import common  # noqa: F401  (before TensorFlow: its CPU defaults, see common/__init__.py)

from cifar10 import towers
from cifar10 import trainer
from common import cluster
from common import training

FLAGS = flags.FLAGS


def train(config, record):
    """Builds the multi-tower graph on the CPU and trains it (as one worker of a cluster, if
    the cluster flags or TF_CONFIG say so)."""
    trainer.run(config, record, towers.build_training_graph, multi_tower=True)


def define_flags():
    trainer.define_flags()
    flags.DEFINE_integer('num_gpus', trainer.DEFAULTS.num_gpus, 'How many GPUs (towers) to use.',
                         lower_bound=1)


def main(argv):
    del argv
    train(trainer.from_flags(FLAGS), training.flags_record(FLAGS))


if __name__ == '__main__':
    define_flags()
    app.run(training.main_for(main, 'train_dir', 'initial_learning_rate',
                              errors=(cluster.ClusterError,)))
