"""Train the CIFAR-10 model on one device (the tutorial's `cifar10_train.py`).

    python cifar10/train.py --max_steps=100000
    python cifar10/eval.py                       # beside it, polls the checkpoints

Re-running with the same --train_dir resumes from its latest checkpoint; --fresh moves the old
directory aside and starts over. The flags of each run are saved in train_dir/flags-*.json.
This file also defines the flags and the training loop that multi_gpu_train.py shares.
"""

import contextlib
import sys
import time

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
    define_data_and_model_flags()


def define_data_and_model_flags():
    """--data_dir, --use_fp16, --conv21: what rebuilds a trained model (predict.py too)."""
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


class _ChiefWaitingSessionManager(tf.compat.v1.train.SessionManager):
    """A non-chief's session manager: checks for the chief's initialisation every second
    (the default is 30 s) and calls on_wait() after each check that found it not ready."""

    def __init__(self, on_wait, **kwargs):
        super().__init__(recovery_wait_secs=1, **kwargs)
        self._on_wait = on_wait

    def _safe_close(self, sess):  # called after each attempt that found the model not ready
        self._on_wait()
        super()._safe_close(sess)


class _WorkerSessionCreator(tf.compat.v1.train.WorkerSessionCreator):
    """A non-chief's session: waits for the chief as long as it takes, saying so every 30 s."""

    def __init__(self, task_index, **kwargs):
        super().__init__(max_wait_secs=None, **kwargs)
        self._task_index = task_index
        self._next_line = 0.0

    def _waiting(self):
        now = time.time()
        if now >= self._next_line:
            print('worker %d: waiting for the chief (worker 0) to initialise or restore the '
                  'model' % self._task_index, flush=True)
            self._next_line = now + 30

    def _get_session_manager(self):
        if not self._session_manager:
            self._session_manager = _ChiefWaitingSessionManager(
                self._waiting, local_init_op=self._scaffold.local_init_op,
                local_init_feed_dict=self._scaffold.local_init_feed_dict,
                ready_op=self._scaffold.ready_op,
                ready_for_local_init_op=self._scaffold.ready_for_local_init_op,
                graph=tf.compat.v1.get_default_graph())
        return self._session_manager


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


class _AllWorkersJoinedHook(tf.compat.v1.train.SessionRunHook):
    """--sync_replicas: a worker starts training only once every worker has joined, saying
    every 30 s how many it waits for. Without it the first worker up makes every update from
    its own gradients alone. The workers count themselves into a queue on ps task 0 (not in
    the checkpoints; a restarted worker finds the others already there)."""

    def __init__(self, task_index, num_workers):
        self._task_index = task_index
        self._num_workers = num_workers

    def begin(self):
        with tf.device('/job:ps/task:0'):
            queue = tf.queue.FIFOQueue(1 << 20, tf.int32, shapes=[], name='workers_joined',
                                       shared_name='workers_joined')
        self._join = queue.enqueue(self._task_index)
        self._joined = queue.size()

    def after_create_session(self, session, coord):
        session.run(self._join)
        next_line = 0.0
        while True:
            joined = session.run(self._joined)
            if joined >= self._num_workers:
                return
            if time.time() >= next_line:
                print('worker %d: waiting for every worker to join (%d of %d so far)'
                      % (self._task_index, joined, self._num_workers), flush=True)
                next_line = time.time() + 30
            time.sleep(0.2)


def step_logger(loss, num_towers=1, tower_losses=None):
    """The hook that checks every tower's loss and prints the step log line."""
    return training.StepLoggerHook(loss, FLAGS.batch_size, num_towers, FLAGS.log_frequency,
                                   tower_losses)


def training_session(loss, config, num_towers=1, summary_op=None, cl=None, server=None,
                     sync_opt=None, tower_losses=None, logger=None):
    """The session the trainers train in (not yet entered).

    A MonitoredTrainingSession restores the latest checkpoint in --train_dir (resume), writes
    a checkpoint every --checkpoint_steps and at the last step, summaries every
    --summary_steps, and the step log line every --log_frequency steps; it stops at
    --max_steps. Every tower's loss (tower_losses, default [loss]) is checked at every step:
    a NaN or Inf stops training with DivergedError before that step is checkpointed, and no
    checkpoint with a NaN or Inf in it is written. In a cluster only the chief (worker 0)
    restores, checkpoints and summarises; every worker logs and checks. logger: the
    step_logger to use (default: a new one).
    """
    is_chief = cl is None or cl.task_index == 0
    scaffold = tf.compat.v1.train.Scaffold(summary_op=summary_op)
    hooks = [tf.compat.v1.train.StopAtStepHook(last_step=FLAGS.max_steps),
             logger or step_logger(loss, num_towers, tower_losses)]
    master = ''
    if cl is not None:
        master = server.target
        # Talk to the ps tasks and ourselves only: workers do not wait for one another.
        config.device_filters.extend(['/job:ps', '/job:worker/task:%d' % cl.task_index])
        if sync_opt is not None:
            hooks.append(sync_opt.make_session_run_hook(is_chief))
            hooks.append(_AllWorkersJoinedHook(cl.task_index, cl.num_workers))
    if cl is not None:  # the ps tasks answer within --cluster_wait_secs, or one-line error
        cluster.reach_ps_tasks(cl, master, config, FLAGS.cluster_wait_secs,
                               FLAGS.ps_hosts or 'TF_CONFIG')
    if is_chief:
        # Our own checkpoint saver, after the loss check (MonitoredTrainingSession's would run
        # before it and save the step that diverged).
        hooks.append(training.checkpoint_saver_hook(FLAGS.train_dir, FLAGS.checkpoint_steps,
                                                    scaffold))
        return tf.compat.v1.train.MonitoredTrainingSession(
            master=master, is_chief=True, checkpoint_dir=FLAGS.train_dir, scaffold=scaffold,
            hooks=hooks, save_checkpoint_steps=None, save_checkpoint_secs=None,
            save_summaries_steps=FLAGS.summary_steps, log_step_count_steps=None, config=config,
            stop_grace_period_secs=STOP_GRACE_SECS)
    return tf.compat.v1.train.MonitoredSession(
        session_creator=_WorkerSessionCreator(cl.task_index, scaffold=scaffold, master=master,
                                              config=config),
        hooks=hooks, stop_grace_period_secs=STOP_GRACE_SECS)


def run_training(train_op, loss, config, num_towers=1, summary_op=None, cl=None, server=None,
                 sync_opt=None, tower_losses=None):
    """The training loop: runs train_op in a training_session until global step reaches
    --max_steps. Raises training.DivergedError on a NaN or Inf loss, and
    training.CheckpointMismatchError when the checkpoint in --train_dir is not this model's."""
    local_steps = 0
    logger = step_logger(loss, num_towers, tower_losses)
    latest = tf.train.latest_checkpoint(FLAGS.train_dir)
    if latest and (cl is None or cl.task_index == 0):  # what the chief will restore
        training.check_checkpoint(
            latest, {v.op.name: v for v in tf.compat.v1.global_variables()}, 'this model',
            '; use --fresh or another --train_dir')
    try:
        session = training_session(loss, config, num_towers, summary_op, cl, server, sync_opt,
                                   logger=logger)
        with session as mon_sess:
            while not mon_sess.should_stop():
                mon_sess.run(train_op)
                local_steps += 1
            if cl is not None:  # before closing, whose queue-runner threads may complain
                print('worker %d: %d local steps' % (cl.task_index, local_steps), flush=True)
    except tf.errors.InvalidArgumentError as e:
        diverged = training.divergence_in_summary(e, logger.step)
        if diverged is None:
            _raise_if_checkpoint_mismatch(e)
            raise
        raise diverged from None
    except (tf.errors.NotFoundError, tf.errors.DataLossError) as e:
        _raise_if_checkpoint_mismatch(e)
        raise


def _raise_if_checkpoint_mismatch(error):
    """Raises CheckpointMismatchError for a restore error of the checkpoint in --train_dir."""
    latest = tf.train.latest_checkpoint(FLAGS.train_dir)
    if latest and 'checkpoint' in str(error).lower():
        raise training.CheckpointMismatchError(
            'the checkpoint %s does not match this model (%s); use --fresh or another '
            '--train_dir' % (latest, training.first_line(error))) from None


MODEL_FLAGS = ('conv21', 'use_fp16')  # the flags that change the model's variables


def start_train_dir(cl):
    """The chief's start of --train_dir: refuse a checkpoint of another model (nothing is
    written or moved), move it aside with --fresh, save this run's flags."""
    if cl is not None and cl.task_index != 0:
        return
    if not FLAGS.fresh:
        training.check_model_flags(FLAGS.train_dir, FLAGS, MODEL_FLAGS)
    training.prepare_train_dir(FLAGS.train_dir, FLAGS.fresh)
    training.save_flags(FLAGS.train_dir, FLAGS)


def train():
    """Builds the single-device graph and trains it (as one worker of a cluster, if asked)."""
    def session_config():
        config = tf.compat.v1.ConfigProto(log_device_placement=FLAGS.log_device_placement)
        config.gpu_options.allow_growth = True
        return with_xla(config)

    cl, server, config = join_cluster(session_config)
    batches_dir = cifar10_data_dir()
    start_train_dir(cl)
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
    """The trainers' absl main around train_fn: one line and exit status 1, not a traceback,
    for bad data, a checkpoint of another model and a diverged run; Ctrl-C keeps the
    checkpoints."""
    return training.main_for(train_fn, 'train_dir', 'initial_learning_rate')


if __name__ == '__main__':
    define_flags()
    app.run(main_for(train))
