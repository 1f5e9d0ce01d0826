"""The CIFAR-10 trainers' library: what cifar10/train.py and cifar10/multi_gpu_train.py share.

    config = trainer.Config.from_flags(FLAGS)       # once, in a program's main
    trainer.run(config, build_graph)                 # cluster, data, train_dir, graph, session

A program (train.py, multi_gpu_train.py) defines the flags (`define_flags`), reads them once
into a `Config` and hands it to `run` with the function that builds its graph; nothing here
reads a flag. `run` holds the setup both share: join the cluster (a ps task serves there and
never returns), find the data, start --train_dir (refuse another model's checkpoint, --fresh,
saved flags), build the graph under the graph-level seed, and train in `training_session`:
resume, checkpoints, summaries, the step log line and the divergence check.
"""

import contextlib
import dataclasses

import common  # noqa: F401  (before TensorFlow: its CPU defaults, see common/__init__.py)
import tensorflow as tf

from cifar10 import model as model_lib
from cifar10 import towers
from common import checkpoints
from common import cluster
from common import config as config_lib
from common import data
from common import training

# How long closing a session waits for queue-runner threads. The chief's sync-token queue
# runner can stay blocked once the other workers have stopped: don't wait the default 120 s.
STOP_GRACE_SECS = 10

@dataclasses.dataclass(frozen=True)
class Model:
    """The flags that change the model's variables: a checkpoint is of one Model."""
    conv21: bool = config_lib.flag(False, 'Add the report\'s third conv layer conv21 '
                                          '(optimiser case 1).')
    use_fp16: bool = config_lib.flag(False, 'Train the model using fp16.')

    def as_dict(self):
        return dataclasses.asdict(self)


MODEL_FLAGS = tuple(f.name for f in dataclasses.fields(Model))


def data_dir_flag():
    """--data_dir: the trainers', the evaluator's and predict.py's."""
    return config_lib.flag('/tmp/cifar10_data',
                           'Path to the CIFAR-10 data directory (default: '
                           '$TF_CLASSICS_DATA/cifar10 when that is set, else /tmp/cifar10_data).')


def batch_size_flag():
    return config_lib.flag(128, 'Number of images to process in a batch.', lower_bound=1)


@dataclasses.dataclass(frozen=True)
class Config:
    """A CIFAR-10 training run: one field per flag (the originals' names and defaults, plus
    the report's changes)."""
    train_dir: str = config_lib.flag('/tmp/cifar10_train',
                                     'Directory where to write event logs and checkpoints.')
    data_dir: str = data_dir_flag()
    batch_size: int = batch_size_flag()
    model: Model = Model()
    max_steps: int = config_lib.flag(1000000, 'Number of batches to run (a run already at this '
                                               'step, or 0: nothing to do).', lower_bound=0)
    num_gpus: int = 1  # multi_gpu_train.py's --num_gpus
    log_device_placement: bool = config_lib.flag(False, 'Whether to log device placement.')
    log_frequency: int = config_lib.flag(10, 'How often to log results to the console.',
                                         lower_bound=1)
    checkpoint_steps: int = config_lib.flag(1000, 'Save a checkpoint every this many steps.',
                                            lower_bound=1)
    summary_steps: int = config_lib.flag(100, 'Write summaries every this many steps.',
                                         lower_bound=1)
    min_fraction_of_examples_in_queue: float = config_lib.flag(
        0.4, 'Fraction of the 50,000 training images the shuffle queue holds before training '
        'starts.', lower_bound=0.0, upper_bound=1.0)
    optimizer: str = config_lib.flag('sgd', 'sgd (the tutorial) or adam.', enum=['sgd', 'adam'])
    initial_learning_rate: float = config_lib.flag(model_lib.INITIAL_LEARNING_RATE,
                                                   'Initial learning rate.', lower_bound=0.0)
    learning_rate_decay_factor: float = config_lib.flag(model_lib.LEARNING_RATE_DECAY_FACTOR,
                                                        'Learning rate decay factor.',
                                                        lower_bound=0.0)
    num_epochs_per_decay: float = config_lib.flag(model_lib.NUM_EPOCHS_PER_DECAY,
                                                  'Epochs after which the learning rate decays.',
                                                  lower_bound=0.0)
    fresh: bool = config_lib.flag(False, 'Move an existing train_dir aside and start over '
                                         'instead of resuming.')
    seed: int = config_lib.flag(None, 'Graph-level random seed.')
    input_pipeline: str = config_lib.flag(
        'queue', 'Training input: the original\'s queues and queue runners, or tf.data (same '
        'distortions and shuffling).', enum=['queue', 'dataset'])
    precision: str = training.precision_flag()
    xla: bool = config_lib.flag(False, 'Compile the model with XLA (global JIT). For GPUs; on a '
                                       'CPU TensorFlow leaves a v1 session unchanged.')
    cluster: 'cluster.Settings' = cluster.DEFAULTS

    def hparams(self):
        """The model and optimiser settings model.py's train and the towers take."""
        return dict(batch_size=self.batch_size, optimizer_name=self.optimizer,
                    initial_learning_rate=self.initial_learning_rate,
                    decay_factor=self.learning_rate_decay_factor,
                    num_epochs_per_decay=self.num_epochs_per_decay)


DEFAULTS = Config()


def define_flags():
    """The trainers' flags (multi_gpu_train.py adds --num_gpus)."""
    config_lib.define_flags(Config)


def from_flags(flag_values):
    """The Config of the parsed flags, in a trainer's main."""
    return config_lib.from_flags(Config, flag_values, 'cifar10')


def session_config(config, multi_tower, split_gpu_mb=None):
    """The devices of the towers (None for the single-device trainer) and the session config:
    the towers' (see towers.tower_devices; split_gpu_mb: one card split into virtual GPUs) or
    one that takes GPU memory as needed; XLA's global JIT with config.xla; the
    mixed-precision rewrite of config.precision."""
    if multi_tower:
        devices, session = towers.tower_devices(config.num_gpus, config.log_device_placement,
                                                split_gpu_mb)
    else:
        devices = None
        session = tf.compat.v1.ConfigProto(log_device_placement=config.log_device_placement)
        session.gpu_options.allow_growth = True
    if config.xla:
        session.graph_options.optimizer_options.global_jit_level = (
            tf.compat.v1.OptimizerOptions.ON_1)
    return devices, training.set_precision(session, config.precision)


def step_logger(config, loss, num_towers=1, tower_losses=None):
    """The hook that checks every tower's loss and prints the step log line."""
    return training.StepLoggerHook(loss, config.batch_size, num_towers, config.log_frequency,
                                   tower_losses)


def training_session(config, loss, session, num_towers=1, summary_op=None, cl=None,
                     server=None, sync=None, tower_losses=None, logger=None):
    """The session the trainers train in (not yet entered).

    A MonitoredTrainingSession restores the latest checkpoint in train_dir (resume), writes
    a checkpoint every checkpoint_steps and at the last step, summaries every summary_steps,
    and the step log line every log_frequency steps; it stops at max_steps. Every tower's
    loss (tower_losses, default [loss]) is checked at every step: a NaN or Inf stops training
    with DivergedError before that step is checkpointed, and no checkpoint with a NaN or Inf
    in it is written. In a cluster only the chief (worker 0) restores, checkpoints and
    summarises; every worker logs and checks. session: the ConfigProto; sync: the
    cluster.SyncReplicas that wrapped the optimiser, if any; logger: the step_logger to use
    (default: a new one).
    """
    is_chief = cl is None or cl.task_index == 0
    scaffold = training.scaffold(summary_op)
    hooks = [tf.compat.v1.train.StopAtStepHook(last_step=config.max_steps),
             logger or step_logger(config, loss, num_towers, tower_losses)]
    master = ''
    if cl is not None:
        master = server.target
        hooks += cluster.worker_hooks(cl, session, sync, is_chief)
        # the ps tasks answer within --cluster_wait_secs, or a one-line error
        cluster.reach_ps_tasks(cl, master, session, config.cluster.cluster_wait_secs,
                               config.cluster.ps_hosts or 'TF_CONFIG')
    if not is_chief:
        return tf.compat.v1.train.MonitoredSession(
            session_creator=cluster.WorkerSessionCreator(cl.task_index, scaffold=scaffold,
                                                         master=master, config=session),
            hooks=hooks, stop_grace_period_secs=STOP_GRACE_SECS)
    # Our own checkpoint saver, after the loss check (MonitoredTrainingSession's would run
    # before it and save the step that diverged).
    hooks.append(training.checkpoint_saver_hook(config.train_dir, config.checkpoint_steps,
                                                scaffold))
    return tf.compat.v1.train.MonitoredTrainingSession(
        master=master, is_chief=True, checkpoint_dir=config.train_dir, scaffold=scaffold,
        hooks=hooks, save_checkpoint_steps=None, save_checkpoint_secs=None,
        save_summaries_steps=config.summary_steps, log_step_count_steps=None, config=session,
        stop_grace_period_secs=STOP_GRACE_SECS)


def run_training(config, train_op, losses, session, summary_op=None, cl=None, server=None,
                 sync=None):
    """The training loop: runs train_op in a training_session until the global step reaches
    max_steps. losses: every tower's loss (the last one is logged). Raises
    training.DivergedError on a NaN or Inf loss, and checkpoints.CheckpointMismatchError when the
    checkpoint in train_dir is not this model's."""
    local_steps = 0
    logger = step_logger(config, losses[-1], len(losses), losses)
    if cl is None or cl.task_index == 0:  # what the chief will restore
        latest = checkpoints.latest(config.train_dir)
        if latest:
            checkpoints.check_graph_variables(latest, '; use --fresh or another --train_dir')
    try:
        with training_session(config, losses[-1], session, len(losses), summary_op, cl,
                              server, sync, logger=logger) as mon_sess:
            while not mon_sess.should_stop():
                mon_sess.run(train_op)
                local_steps += 1
            if cl is not None:  # before closing, whose queue-runner threads may complain
                print('worker %d: %d local steps' % (cl.task_index, local_steps), flush=True)
    except tf.errors.InvalidArgumentError as e:
        diverged = training.divergence_in_summary(e, logger.step)
        if diverged is None:
            _raise_if_checkpoint_mismatch(config.train_dir, e)
            raise
        raise diverged from None
    except (tf.errors.NotFoundError, tf.errors.DataLossError) as e:
        _raise_if_checkpoint_mismatch(config.train_dir, e)
        raise


def _raise_if_checkpoint_mismatch(train_dir, error):
    """Raises CheckpointMismatchError for a restore error of the checkpoint in train_dir."""
    latest = checkpoints.latest(train_dir)
    if latest and 'checkpoint' in str(error).lower():
        raise checkpoints.CheckpointMismatchError(
            'the checkpoint %s does not match this model (%s); use --fresh or another '
            '--train_dir' % (latest, checkpoints.first_line(error))) from None


def run(config, record, build_graph, multi_tower=False):
    """Trains as config says (as one worker of a cluster, if it describes one).

    record: the run's training.flags_record, saved in train_dir. build_graph(config,
    batches_dir, devices, wrap_optimizer) builds the training graph in the default graph and
    returns (train_op, every tower's loss, summary_op or None for all summaries); devices are
    the towers' (multi_tower) or None; wrap_optimizer, when not None, must wrap the optimiser.
    With multi_tower the graph is built on the CPU and the towers go to their devices.
    """
    cl = cluster.join(config.cluster)  # a ps task serves its variables here, never returning
    is_chief = cl is None or cl.task_index == 0
    if cl is None and not config.fresh:  # a finished run: one line, nothing written
        checkpoints.check_done(config.train_dir, config.max_steps, 'max_steps')
    if is_chief:
        checkpoints.check_folder(config.train_dir, 'train_dir')
    devices, session = session_config(config, multi_tower)
    server = cluster.worker_server(cl, session)
    batches_dir = data.maybe_download_and_extract_cifar10(config.data_dir)
    sync = cluster.SyncReplicas(cl) if cl is not None and config.cluster.sync_replicas else None
    # The chief holds train_dir (one writer) while it trains; the other workers write nothing.
    with (training.start_run_dir(config.train_dir, 'train_dir', config.fresh, record,
                                 config.model.as_dict()) if is_chief
          else contextlib.nullcontext()):
        # Tower devices carry no job: in a cluster the replica device setter completes them
        # with this worker, and sends the variables (pinned to /cpu:0) to the ps tasks.
        with training.seeded_graph(config.seed), \
                cluster.graph_device(cl, '/cpu:0' if multi_tower else None):
            train_op, losses, summary_op = build_graph(config, batches_dir, devices,
                                                       sync.wrap if sync else None)
            run_training(config, train_op, losses, session, summary_op, cl, server, sync)
