"""The CIFAR-10 trainers' library: what cifar10/train.py and cifar10/multi_gpu_train.py share
around the tutorial's train(), which each of them spells out:

    session_config = trainer.session_config(config)       # (multi-tower: devices too)
    role = cluster.join(config.cluster, session_config)   # cluster.LOCAL, or this worker
    trainer.check_done(config, role)                      # a finished run: one line, exit 0
    with trainer.run_folder(config, role, record), ...:  # the chief holds --train_dir
        ... inputs, inference, loss, train op ...
        with trainer.monitored_session(config, role, session_config, hooks) as mon_sess:
            while not mon_sess.should_stop():
                mon_sess.run(train_op)

A program defines the flags (`define_flags`) and reads them once into a `Config`; nothing here
reads a flag.
"""

import contextlib
import dataclasses

import common  # noqa: F401  (before TensorFlow: its CPU defaults, see common/__init__.py)
import tensorflow as tf

from cifar10 import inputs
from cifar10 import model as model_lib
from cifar10 import towers
from common import checkpoints
from common import cluster
from common import config as config_lib
from common import training

# How long closing a session waits for queue-runner threads. The chief's sync-token queue
# runner can stay blocked once the other workers have stopped: don't wait the default 120 s.
STOP_GRACE_SECS = 10


@dataclasses.dataclass(frozen=True)
class Config:
    """A CIFAR-10 training run: one field per flag (the originals' names and defaults, plus
    the report's changes)."""
    train_dir: str = config_lib.flag('/tmp/cifar10_train',
                                     'Directory where to write event logs and checkpoints.')
    data_dir: str = inputs.data_dir_flag()
    batch_size: int = model_lib.batch_size_flag()
    model: model_lib.Model = model_lib.Model()
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
        """The optimiser's settings, as model.train and the towers take them."""
        return model_lib.Hyperparameters(
            batch_size=self.batch_size, optimizer=self.optimizer,
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


def session_config(config, multi_tower=False, split_gpu_mb=None):
    """The session's ConfigProto (and, multi_tower, the towers' devices: see
    towers.tower_devices; split_gpu_mb: one card split into virtual GPUs): one that takes GPU
    memory as needed; XLA's global JIT with config.xla; the mixed-precision rewrite of
    config.precision. Returns the ConfigProto, or (devices, ConfigProto) with multi_tower."""
    if multi_tower:
        devices, session_config = towers.tower_devices(
            config.num_gpus, config.log_device_placement, split_gpu_mb)
    else:
        session_config = tf.compat.v1.ConfigProto(
            log_device_placement=config.log_device_placement)
        session_config.gpu_options.allow_growth = True
    if config.xla:
        session_config.graph_options.optimizer_options.global_jit_level = (
            tf.compat.v1.OptimizerOptions.ON_1)
    training.set_precision(session_config, config.precision)
    return (devices, session_config) if multi_tower else session_config


def check_done(config, role):
    """Raises checkpoints.NothingToDo when training alone into a --train_dir already at
    --max_steps (nothing is written); a cluster's chief leaves it to StopAtStepHook."""
    if role is cluster.LOCAL and not config.fresh:
        checkpoints.check_done(config.train_dir, config.max_steps, 'max_steps')


def run_folder(config, role, record):
    """The chief's hold on --train_dir while it trains (training.start_run_dir: one writer,
    --fresh, another model's checkpoint refused, the run's flags `record` saved); the other
    workers write nothing there."""
    if not role.is_chief:
        return contextlib.nullcontext()
    return training.start_run_dir(config.train_dir, 'train_dir', config.fresh, record,
                                  config.model.as_dict())


def step_logger(config, losses):
    """The hook that checks every tower's loss (`losses`) at every step and prints the step
    log line (the last tower's loss) every --log_frequency steps."""
    return training.StepLoggerHook(losses[-1], config.batch_size, len(losses),
                                   config.log_frequency, losses)


@contextlib.contextmanager
def monitored_session(config, role, session_config, hooks, summary_op=None):
    """The tutorial's MonitoredTrainingSession, for this role: the chief restores the latest
    checkpoint in --train_dir (resume), writes a checkpoint every --checkpoint_steps and at the
    end (never one with a NaN or Inf; our saver, after the hooks that check the loss) and the
    summaries (summary_op, default: all) every --summary_steps; another worker waits for the
    chief's model. Every role stops at --max_steps (after `hooks`, which run in order).

    Raises training.DivergedError for a NaN or Inf summary (histograms run before the loss
    check) and checkpoints.CheckpointMismatchError when --train_dir holds another model's
    checkpoint, in one line."""
    if role.is_chief:
        latest = checkpoints.latest(config.train_dir)
        if latest:
            checkpoints.check_graph_variables(latest, '; use --fresh or another --train_dir')
    scaffold = training.scaffold(summary_op)
    hooks = [tf.compat.v1.train.StopAtStepHook(last_step=config.max_steps)] + list(hooks)
    hooks += role.hooks(session_config)
    role.connect(session_config, config.cluster.cluster_wait_secs)
    logger = next((h for h in hooks if isinstance(h, training.StepLoggerHook)), None)
    try:
        if role.is_chief:
            # Alone, each run is one step; in a cluster other workers' runs count too.
            steps_per_run = 1 if role is cluster.LOCAL else None
            hooks.append(training.checkpoint_saver_hook(config.train_dir,
                                                        config.checkpoint_steps, scaffold,
                                                        steps_per_run))
            session = tf.compat.v1.train.MonitoredTrainingSession(
                master=role.master, is_chief=True, checkpoint_dir=config.train_dir,
                scaffold=scaffold, hooks=hooks, save_checkpoint_steps=None,
                save_checkpoint_secs=None, save_summaries_steps=config.summary_steps,
                log_step_count_steps=None, config=session_config,
                stop_grace_period_secs=STOP_GRACE_SECS)
        else:
            session = role.worker_session(scaffold, session_config, hooks, STOP_GRACE_SECS)
        with session as mon_sess:
            yield mon_sess
    except tf.errors.InvalidArgumentError as e:
        diverged = training.divergence_in_summary(e, logger.step if logger else 0)
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
