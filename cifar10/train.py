"""Train the CIFAR-10 model on one device (the tutorial's `cifar10_train.py`).

    python cifar10/train.py --max_steps=100000
    python cifar10/eval.py                       # beside it, polls the checkpoints

Re-running with the same --train_dir resumes from its latest checkpoint (a finished run does
nothing); --fresh moves the old directory aside and starts over. The flags of each run are
saved in train_dir/flags-*.json. What train() shares with multi_gpu_train.py (the session
config, the run folder, the monitored session and its hooks) is in cifar10/train_lib.py. For
several machines (ps tasks and workers): cifar10/dist_train.py.
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
from common import training

FLAGS = flags.FLAGS


def train(config, record):
    """Train CIFAR-10 for a number of steps. record: the run's training.flags_record, saved
    in --train_dir."""
    session_config = train_lib.session_config(config)
    train_lib.check_done(config)
    batches_dir = data.maybe_download_and_extract_cifar10(config.data_dir)
    with train_lib.run_folder(config, record), training.seeded_graph(config.seed):
        global_step = tf.compat.v1.train.get_or_create_global_step()

        # Get images and labels for CIFAR-10, on the CPU.
        with tf.device('/cpu:0'):
            images, labels = inputs.training_batches(batches_dir, config.batch_size,
                                                     config.min_fraction_of_examples_in_queue,
                                                     config.input_pipeline)

        # Build a Graph that computes the logits predictions from the inference model.
        logits = model.inference(images, config.model.use_fp16, config.model.conv21)

        # Calculate loss.
        loss = model.loss(logits, labels)

        # Build a Graph that trains the model with one batch of examples and updates the
        # model parameters.
        train_op = model.train(loss, global_step, config.hparams())

        hooks = [train_lib.step_logger(config, [loss])]  # the NaN check and the log line
        with train_lib.monitored_session(config, session_config, hooks) as mon_sess:
            while not mon_sess.should_stop():
                mon_sess.run(train_op)


def define_flags():
    train_lib.define_flags()


def main(argv):
    del argv
    train(train_lib.from_flags(FLAGS), training.flags_record(FLAGS))


if __name__ == '__main__':
    entry.run(define_flags, main, 'initial_learning_rate')
