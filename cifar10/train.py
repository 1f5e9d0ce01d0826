"""Train the CIFAR-10 model on one device (the tutorial's `cifar10_train.py`).

    python cifar10/train.py --max_steps=100000
    python cifar10/eval.py                       # beside it, polls the checkpoints

Re-running with the same --train_dir resumes from its latest checkpoint; --fresh moves the old
directory aside and starts over. The flags of each run are saved in train_dir/flags-*.json.
This file also defines the flags and the training loop that multi_gpu_train.py shares.
"""

import contextlib
import sys

from absl import app
from absl import flags
import common  # noqa: F401  (before TensorFlow: its CPU defaults, see common/__init__.py)
import tensorflow as tf

from cifar10 import inputs
from cifar10 import model
from common import cluster
from common import data
from common import training

FLAGS = flags.FLAGS

# How long closing a session waits for queue-runner threads. The chief's sync-token queue
# runner can stay blocked once the other workers have stopped: don't wait the default 120 s.
STOP_GRACE_SECS = 10


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
    flags.DEFINE_enum('input_pipeline', 'queue', ['queue', 'dataset'],
                      'Training input: the original\'s queues and queue runners, or tf.data '
                      '(same distortions and shuffling).')
    flags.DEFINE_boolean('xla', False,
                         'Compile the model with XLA (global JIT). For GPUs; on a CPU '
                         'TensorFlow leaves a v1 session unchanged.')
    cluster.define_flags()


def cifar10_data_dir():
    """The CIFAR-10 batches directory: --data_dir, $TF_CLASSICS_DATA/cifar10 or the default."""
    data_dir = data.resolve_data_dir('cifar10', FLAGS.data_dir, FLAGS['data_dir'].present)
    return data.maybe_download_and_extract_cifar10(data_dir)


def training_inputs(batches_dir):
    """Distorted training batches from the pipeline --input_pipeline names."""
    files = data.cifar10_train_files(batches_dir)
    if FLAGS.input_pipeline == 'dataset':
        return inputs.distorted_inputs_dataset(files, FLAGS.batch_size,
                                               FLAGS.min_fraction_of_examples_in_queue)
    return inputs.distorted_inputs(files, FLAGS.batch_size,
                                   FLAGS.min_fraction_of_examples_in_queue)


def with_xla(config):
    """config, with XLA's global JIT turned on when --xla is set."""
    if FLAGS.xla:
        config.graph_options.optimizer_options.global_jit_level = (
            tf.compat.v1.OptimizerOptions.ON_1)
    return config


def hparams():
    """The model and optimiser settings both trainers pass to model.py."""
    return dict(batch_size=FLAGS.batch_size, optimizer_name=FLAGS.optimizer,
                initial_learning_rate=FLAGS.initial_learning_rate,
                decay_factor=FLAGS.learning_rate_decay_factor,
                num_epochs_per_decay=FLAGS.num_epochs_per_decay)


class _WorkerSessionCreator(tf.compat.v1.train.WorkerSessionCreator):
    """A non-chief's session: checks for the chief's initialisation every second instead of
    the default 30 s."""

    def _get_session_manager(self):
        manager = super()._get_session_manager()
        manager._recovery_wait_secs = 1  # pylint: disable=protected-access
        return manager


def join_cluster(server_config_fn):
    """Joins the cluster the flags (or TF_CONFIG) describe; returns (cluster, server, config).

    cluster and server are None when training locally. server_config_fn() gives the session
    config (with this worker's devices). A ps task serves its variables until it is killed
    and never returns.
    """
    try:
        cl = cluster.from_flags(FLAGS)
    except ValueError as e:
        sys.exit('error: %s' % e)
    if cl is not None and cl.job_name == 'ps':
        server = tf.compat.v1.train.Server(cl.spec, job_name='ps', task_index=cl.task_index)
        print('ps task %d serving at %s' % (cl.task_index, server.target), flush=True)
        server.join()
    config = server_config_fn()
    if cl is None:
        return None, None, config
    server = tf.compat.v1.train.Server(cl.spec, job_name='worker', task_index=cl.task_index,
                                       config=config)
    return cl, server, config


def graph_device(cl, device=None):
    """The device scope of the whole graph: `device` (None: TensorFlow's placement) locally; in
    a cluster, variables on the ps tasks (round robin) and everything else on this worker's
    `device`."""
    if cl is None:
        return tf.device(device) if device else contextlib.nullcontext()
    return tf.compat.v1.device(tf.compat.v1.train.replica_device_setter(
        worker_device='/job:worker/task:%d%s' % (cl.task_index, device or ''), cluster=cl.spec))


def sync_optimizer_wrapper(cl, wrapped):
    """For --sync_replicas in a cluster: a function that wraps the optimiser in a
    SyncReplicasOptimizer aggregating every worker's gradients; it records it in `wrapped`."""
    if cl is None or not FLAGS.sync_replicas:
        return None

    def wrap(opt):
        wrapped.append(tf.compat.v1.train.SyncReplicasOptimizer(
            opt, replicas_to_aggregate=cl.num_workers, total_num_replicas=cl.num_workers))
        return wrapped[-1]
    return wrap


def training_session(loss, config, num_towers=1, summary_op=None, cl=None, server=None,
                     sync_opt=None):
    """The session the trainers train in (not yet entered).

    A MonitoredTrainingSession restores the latest checkpoint in --train_dir (resume), writes
    a checkpoint every --checkpoint_steps and at the last step, summaries every
    --summary_steps, and the step log line every --log_frequency steps; it stops at
    --max_steps. In a cluster only the chief (worker 0) restores, checkpoints and summarises;
    every worker logs.
    """
    is_chief = cl is None or cl.task_index == 0
    scaffold = tf.compat.v1.train.Scaffold(summary_op=summary_op)
    hooks = [tf.compat.v1.train.StopAtStepHook(last_step=FLAGS.max_steps),
             training.StepLoggerHook(loss, FLAGS.batch_size, num_towers, FLAGS.log_frequency)]
    master = ''
    if cl is not None:
        master = server.target
        # Talk to the ps tasks and ourselves only: workers do not wait for one another.
        config.device_filters.extend(['/job:ps', '/job:worker/task:%d' % cl.task_index])
        if sync_opt is not None:
            hooks.append(sync_opt.make_session_run_hook(is_chief))
    with cluster.Deadline(FLAGS.cluster_wait_secs if cl else 10 ** 9,
                          'the cluster (%s) could not be reached within '
                          '--cluster_wait_secs=%d' % (FLAGS.ps_hosts or 'TF_CONFIG',
                                                      FLAGS.cluster_wait_secs)):
        if is_chief:
            return tf.compat.v1.train.MonitoredTrainingSession(
                master=master, is_chief=True, checkpoint_dir=FLAGS.train_dir,
                scaffold=scaffold, hooks=hooks, save_checkpoint_steps=FLAGS.checkpoint_steps,
                save_summaries_steps=FLAGS.summary_steps, log_step_count_steps=None,
                config=config, stop_grace_period_secs=STOP_GRACE_SECS)
        return tf.compat.v1.train.MonitoredSession(
            session_creator=_WorkerSessionCreator(scaffold=scaffold, master=master,
                                                  config=config),
            hooks=hooks, stop_grace_period_secs=STOP_GRACE_SECS)


def run_training(train_op, loss, config, num_towers=1, summary_op=None, cl=None, server=None,
                 sync_opt=None):
    """The training loop: runs train_op in a training_session until global step reaches
    --max_steps."""
    local_steps = 0
    try:
        session = training_session(loss, config, num_towers, summary_op, cl, server, sync_opt)
        with session as mon_sess:
            while not mon_sess.should_stop():
                mon_sess.run(train_op)
                local_steps += 1
            if cl is not None:  # before closing, whose queue-runner threads may complain
                print('worker %d: %d local steps' % (cl.task_index, local_steps), flush=True)
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as e:
        if 'checkpoint' not in str(e).lower():
            raise
        sys.exit('error: the checkpoint in --train_dir=%s does not match this model (%s); '
                 'use --fresh or another --train_dir' % (FLAGS.train_dir,
                                                         str(e).splitlines()[0]))


def train():
    """Builds the single-device graph and trains it (as one worker of a cluster, if asked)."""
    def session_config():
        config = tf.compat.v1.ConfigProto(log_device_placement=FLAGS.log_device_placement)
        config.gpu_options.allow_growth = True
        return with_xla(config)

    cl, server, config = join_cluster(session_config)
    batches_dir = cifar10_data_dir()
    if cl is None or cl.task_index == 0:
        training.prepare_train_dir(FLAGS.train_dir, FLAGS.fresh)
        training.save_flags(FLAGS.train_dir, FLAGS)
    wrapped = []
    with tf.Graph().as_default(), graph_device(cl):
        if FLAGS.seed is not None:
            tf.compat.v1.set_random_seed(FLAGS.seed)
        global_step = tf.compat.v1.train.get_or_create_global_step()
        with tf.device('/cpu:0'):
            images, labels = training_inputs(batches_dir)
        logits = model.inference(images, FLAGS.use_fp16, FLAGS.conv21)
        loss = model.loss(logits, labels)
        train_op = model.train(loss, global_step, wrap_optimizer=sync_optimizer_wrapper(
            cl, wrapped), **hparams())
        run_training(train_op, loss, config, cl=cl, server=server,
                     sync_opt=wrapped[0] if wrapped else None)


def main_for(train_fn):
    """The trainers' absl main around train_fn: one line, not a traceback, for bad data and
    for Ctrl-C."""
    def main(argv):
        del argv
        try:
            train_fn()
        except data.DataError as e:
            sys.exit('error: %s' % e)
        except KeyboardInterrupt:
            sys.exit('Interrupted: the checkpoints in --train_dir=%s are kept; run the same '
                     'command again to resume.' % FLAGS.train_dir)
    return main


if __name__ == '__main__':
    define_flags()
    app.run(main_for(train))
