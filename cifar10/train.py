"""Train the CIFAR-10 model on one device (the tutorial's `cifar10_train.py`).

    python cifar10/train.py --max_steps=100000
    python cifar10/eval.py                       # beside it, polls the checkpoints

Re-running with the same --train_dir resumes from its latest checkpoint; --fresh moves the old
directory aside and starts over. The flags of each run are saved in train_dir/flags-*.json.
This file also defines the flags and the training loop that multi_gpu_train.py shares.
"""

import sys

from absl import app
from absl import flags
import tensorflow as tf

from cifar10 import inputs
from cifar10 import model
from common import data
from common import training

FLAGS = flags.FLAGS


def define_model_flags():
    """Flags of the model library (the original cifar10.py's), shared with eval.py."""
    flags.DEFINE_integer('batch_size', 128, 'Number of images to process in a batch.',
                         lower_bound=1)
    flags.DEFINE_string('data_dir', '/tmp/cifar10_data',
                        'Path to the CIFAR-10 data directory (default: $TF_CLASSICS_DATA/cifar10 '
                        'when that is set, else /tmp/cifar10_data).')
    flags.DEFINE_boolean('use_fp16', False, 'Train the model using fp16.')
    flags.DEFINE_boolean('conv21', False,
                         'Add the report\'s third conv layer conv21 (optimiser case 1).')


def define_flags():
    """The trainers' flags: the originals' names and defaults, plus the report's changes."""
    define_model_flags()
    flags.DEFINE_string('train_dir', '/tmp/cifar10_train',
                        'Directory where to write event logs and checkpoints.')
    flags.DEFINE_integer('max_steps', 1000000, 'Number of batches to run.', lower_bound=0)
    flags.DEFINE_boolean('log_device_placement', False, 'Whether to log device placement.')
    flags.DEFINE_integer('log_frequency', 10, 'How often to log results to the console.',
                         lower_bound=1)
    flags.DEFINE_integer('checkpoint_steps', 1000, 'Save a checkpoint every this many steps.',
                         lower_bound=1)
    flags.DEFINE_integer('summary_steps', 100, 'Write summaries every this many steps.',
                         lower_bound=1)
    flags.DEFINE_float('min_fraction_of_examples_in_queue', 0.4,
                       'Fraction of the 50,000 training images the shuffle queue holds before '
                       'training starts.', lower_bound=0.0, upper_bound=1.0)
    flags.DEFINE_enum('optimizer', 'sgd', ['sgd', 'adam'], 'sgd (the tutorial) or adam.')
    flags.DEFINE_float('initial_learning_rate', model.INITIAL_LEARNING_RATE,
                       'Initial learning rate.', lower_bound=0.0)
    flags.DEFINE_float('learning_rate_decay_factor', model.LEARNING_RATE_DECAY_FACTOR,
                       'Learning rate decay factor.', lower_bound=0.0)
    flags.DEFINE_float('num_epochs_per_decay', model.NUM_EPOCHS_PER_DECAY,
                       'Epochs after which the learning rate decays.', lower_bound=0.0)
    flags.DEFINE_boolean('fresh', False,
                         'Move an existing train_dir aside and start over instead of resuming.')
    flags.DEFINE_integer('seed', None, 'Graph-level random seed.')


def cifar10_data_dir():
    """The CIFAR-10 batches directory: --data_dir, $TF_CLASSICS_DATA/cifar10 or the default."""
    data_dir = data.resolve_data_dir('cifar10', FLAGS.data_dir, FLAGS['data_dir'].present)
    return data.maybe_download_and_extract_cifar10(data_dir)


def hparams():
    """The model and optimiser settings both trainers pass to model.py."""
    return dict(batch_size=FLAGS.batch_size, optimizer_name=FLAGS.optimizer,
                initial_learning_rate=FLAGS.initial_learning_rate,
                decay_factor=FLAGS.learning_rate_decay_factor,
                num_epochs_per_decay=FLAGS.num_epochs_per_decay)


def run_training(train_op, loss, config, num_towers=1, summary_op=None):
    """The training loop: runs train_op until global step reaches --max_steps.

    A MonitoredTrainingSession restores the latest checkpoint in --train_dir (resume), writes
    a checkpoint every --checkpoint_steps and at the last step, summaries every
    --summary_steps, and the step log line every --log_frequency steps.
    """
    scaffold = tf.compat.v1.train.Scaffold(summary_op=summary_op)
    hooks = [tf.compat.v1.train.StopAtStepHook(last_step=FLAGS.max_steps),
             training.StepLoggerHook(loss, FLAGS.batch_size, num_towers, FLAGS.log_frequency)]
    try:
        with tf.compat.v1.train.MonitoredTrainingSession(
                checkpoint_dir=FLAGS.train_dir, scaffold=scaffold, hooks=hooks,
                save_checkpoint_steps=FLAGS.checkpoint_steps,
                save_summaries_steps=FLAGS.summary_steps,
                log_step_count_steps=None, config=config) as mon_sess:
            while not mon_sess.should_stop():
                mon_sess.run(train_op)
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as e:
        if 'checkpoint' not in str(e).lower():
            raise
        sys.exit('error: the checkpoint in --train_dir=%s does not match this model (%s); '
                 'use --fresh or another --train_dir' % (FLAGS.train_dir,
                                                         str(e).splitlines()[0]))


def train():
    """Builds the single-device graph and trains it."""
    batches_dir = cifar10_data_dir()
    training.prepare_train_dir(FLAGS.train_dir, FLAGS.fresh)
    training.save_flags(FLAGS.train_dir, FLAGS)
    config = tf.compat.v1.ConfigProto(log_device_placement=FLAGS.log_device_placement)
    config.gpu_options.allow_growth = True
    with tf.Graph().as_default():
        if FLAGS.seed is not None:
            tf.compat.v1.set_random_seed(FLAGS.seed)
        global_step = tf.compat.v1.train.get_or_create_global_step()
        with tf.device('/cpu:0'):
            images, labels = inputs.distorted_inputs(data.cifar10_train_files(batches_dir),
                                                     FLAGS.batch_size,
                                                     FLAGS.min_fraction_of_examples_in_queue)
        logits = model.inference(images, FLAGS.use_fp16, FLAGS.conv21)
        loss = model.loss(logits, labels)
        train_op = model.train(loss, global_step, **hparams())
        run_training(train_op, loss, config)


def main(argv):
    del argv
    try:
        train()
    except data.DataError as e:
        sys.exit('error: %s' % e)


if __name__ == '__main__':
    define_flags()
    app.run(main)
