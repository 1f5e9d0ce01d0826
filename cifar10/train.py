"""Train the CIFAR-10 model on one device (the tutorial's `cifar10_train.py`).

    python cifar10/train.py --max_steps=100000
    python cifar10/eval.py                       # beside it, polls the checkpoints

Re-running with the same --train_dir resumes from its latest checkpoint; --fresh moves the old
directory aside and starts over. The flags of each run are saved in train_dir/flags-*.json.
The session, hooks, cluster and train_dir handling it shares with multi_gpu_train.py are in
cifar10/trainer.py.
"""

from absl import app
from absl import flags
import common  # noqa: F401  (before TensorFlow: its CPU defaults, see common/__init__.py)
import tensorflow as tf

from cifar10 import inputs
from cifar10 import model
from cifar10 import trainer
from common import cluster
from common import training

FLAGS = flags.FLAGS


def build_graph(config, batches_dir, devices, wrap_optimizer):
    """The single-device graph: global step, distorted inputs (on the CPU), inference, loss
    and the train op. Returns (train_op, [loss], None: every summary)."""
    del devices  # one device: TensorFlow's placement
    global_step = tf.compat.v1.train.get_or_create_global_step()
    with tf.device('/cpu:0'):
        images, labels = inputs.training_batches(batches_dir, config.batch_size,
                                                 config.min_fraction_of_examples_in_queue,
                                                 config.input_pipeline)
    logits = model.inference(images, config.model.use_fp16, config.model.conv21)
    loss = model.loss(logits, labels)
    train_op = model.train(loss, global_step, wrap_optimizer=wrap_optimizer, **config.hparams())
    return train_op, [loss], None


def train(config, record):
    """Builds the single-device graph and trains it (as one worker of a cluster, if asked)."""
    trainer.run(config, record, build_graph)


def main(argv):
    del argv
    train(trainer.from_flags(FLAGS), training.flags_record(FLAGS))


if __name__ == '__main__':
    trainer.define_flags()
    app.run(training.main_for(main, 'train_dir', 'initial_learning_rate',
                              errors=(cluster.ClusterError,)))
