"""The CIFAR-10 training library: what cifar10/train.py, cifar10/multi_gpu_train.py and
cifar10/dist_train.py share around the tutorial's train(), which each of them spells out:

    session_config = train_lib.session_config(config)     # multi-tower: tower_session_config
    train_lib.check_done(config)                          # a finished run: one line, exit 0
    with train_lib.run_folder(config, record), ...:       # holds --train_dir while it trains
        ... inputs, inference, loss, train op ...
        with train_lib.monitored_session(config, session_config, hooks) as mon_sess:
            while not mon_sess.should_stop():
                mon_sess.run(train_op)

and the multi-GPU trainer's devices (tower_devices) and prefetch queue (prefetch_queue). A
program defines the flags (`define_flags`) and reads them once into a `Config`; nothing here
reads a flag.
"""

import contextlib
import dataclasses
import sys

import tensorflow as tf

from cifar10 import inputs
from cifar10 import model as model_lib
from common import checkpoints
from common import config as config_lib
from common import training

# How long closing a session waits for queue-runner threads (a cluster chief's sync-token
# queue runner can stay blocked once the other workers have stopped): not the default 120 s.
STOP_GRACE_SECS = 10


@dataclasses.dataclass(frozen=True)
class Config:
    """A CIFAR-10 training run: one field per flag (the originals' names and defaults, plus
    the report's changes)."""
    train_dir: str = config_lib.flag('/tmp/cifar10_train',
                                     'Directory where to write event logs and checkpoints.')
    data_dir: str = inputs.data_dir_flag()
    batch_size: int = model_lib.batch_size_flag()
    model: model_lib.ModelFlags = model_lib.ModelFlags()
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

    def hparams(self):
        """The optimiser's settings, as model.train and the towers take them."""
        return model_lib.Hyperparameters(
            batch_size=self.batch_size, optimizer=self.optimizer,
            initial_learning_rate=self.initial_learning_rate,
            decay_factor=self.learning_rate_decay_factor,
            num_epochs_per_decay=self.num_epochs_per_decay)


DEFAULTS = Config()


def define_flags():
    """The trainers' flags (multi_gpu_train.py and dist_train.py add --num_gpus)."""
    config_lib.define_flags(Config)


def from_flags(flag_values):
    """The Config of the parsed flags, in a trainer's main."""
    return config_lib.from_flags(Config, flag_values, 'cifar10')


def session_config(config):
    """The single-device trainer's ConfigProto: GPU memory taken as needed, and
    with_options(config)'s settings."""
    session_config = tf.compat.v1.ConfigProto(log_device_placement=config.log_device_placement)
    session_config.gpu_options.allow_growth = True
    return with_options(session_config, config)


def tower_session_config(config, split_gpu_mb=None):
    """The multi-tower trainers' (devices, ConfigProto): a device per tower of
    config.num_gpus and the ConfigProto that makes them exist (tower_devices; split_gpu_mb:
    one card split into virtual GPUs), with with_options(config)'s settings."""
    devices, session_config = tower_devices(config.num_gpus, config.log_device_placement,
                                            split_gpu_mb)
    return devices, with_options(session_config, config)


def with_options(session_config, config):
    """session_config (changed and returned) with XLA's global JIT for config.xla and the
    mixed-precision rewrite of config.precision."""
    if config.xla:
        session_config.graph_options.optimizer_options.global_jit_level = (
            tf.compat.v1.OptimizerOptions.ON_1)
    return training.set_precision(session_config, config.precision)


def tower_devices(num_towers, log_device_placement=False, split_gpu_mb=None):
    """Chooses a device per tower and the session config that makes those devices exist.

    Towers go to /gpu:0..N-1 when that many GPUs are visible. With split_gpu_mb and one GPU,
    the card is split into N virtual GPUs of that many MB each (bench/gpu.py's two towers on
    one card). Otherwise they go to N logical CPU devices (/cpu:0..N-1,
    `ConfigProto(device_count={'CPU': N})`), with one warning line when more than one tower
    was asked for (one tower on the CPU is the original's CPU run, without a word). Soft
    placement stays off there: it would silently put every tower on /cpu:0.

    Returns (devices, session_config).
    """
    gpus = tf.config.list_physical_devices('GPU')
    split = split_gpu_mb and len(gpus) == 1 and num_towers > 1
    if len(gpus) >= num_towers or split:
        devices = ['/gpu:%d' % i for i in range(num_towers)]
        session_config = tf.compat.v1.ConfigProto(allow_soft_placement=True,
                                                  log_device_placement=log_device_placement)
        if split:
            session_config.gpu_options.experimental.virtual_devices.add().memory_limit_mb.extend(
                [split_gpu_mb] * num_towers)
        else:
            # Take GPU memory as needed, so that eval.py runs beside training on the same card.
            session_config.gpu_options.allow_growth = True
        return devices, session_config
    if num_towers > 1:
        print('WARNING: %d GPU(s) visible for %d towers: running the towers on %d logical CPU '
              'devices instead' % (len(gpus), num_towers, num_towers), file=sys.stderr,
              flush=True)
    devices = ['/cpu:%d' % i for i in range(num_towers)]
    session_config = tf.compat.v1.ConfigProto(device_count={'CPU': num_towers},
                                              allow_soft_placement=False,
                                              log_device_placement=log_device_placement)
    return devices, session_config


def prefetch_queue(tensors, capacity):
    """A FIFOQueue that a queue-runner thread keeps filled with `tensors` (tf.contrib's
    prefetch_queue is gone). Returns the queue."""
    queue = tf.queue.FIFOQueue(capacity, dtypes=[t.dtype for t in tensors],
                               shapes=[t.shape for t in tensors], name='batch_queue')
    tf.compat.v1.train.add_queue_runner(
        tf.compat.v1.train.QueueRunner(queue, [queue.enqueue(tensors)]))
    tf.compat.v1.summary.scalar('queue/batch_queue/fraction_of_%d_full' % capacity,
                                tf.cast(queue.size(), tf.float32) / capacity)
    return queue


def check_done(config):
    """Raises checkpoints.NothingToDo when --train_dir is already at --max_steps (nothing is
    written)."""
    if not config.fresh:
        checkpoints.check_done(config.train_dir, config.max_steps, 'max_steps')


def run_folder(config, record):
    """The hold on --train_dir while training (training.start_run_dir: one writer, --fresh,
    another model's checkpoint refused, the run's flags `record` saved)."""
    return training.start_run_dir(config.train_dir, 'train_dir', config.fresh, record,
                                  config.model.as_dict())


def step_logger(config, losses):
    """The hook that checks every tower's loss (`losses`) at every step and prints the step
    log line (the last tower's loss) every --log_frequency steps."""
    return training.StepLoggerHook(losses[-1], config.batch_size, len(losses),
                                   config.log_frequency, losses)


@contextlib.contextmanager
def monitored_session(config, session_config, hooks, summary_op=None, master=''):
    """The tutorial's MonitoredTrainingSession: it restores the latest checkpoint in
    --train_dir (resume), writes a checkpoint every --checkpoint_steps and at the end (never
    one with a NaN or Inf; TensorFlow's CheckpointSaverHook with our listener, after the hooks
    that check the loss) and the summaries (summary_op, default: all) every --summary_steps,
    and stops at --max_steps (after `hooks`, which run in order), or at Ctrl-C after a last
    checkpoint (KeyboardInterrupt raised again once it is written). master: the server of a
    cluster's chief (dist_train.py).

    Raises training.DivergedError for a NaN or Inf summary (histograms run before the loss
    check) and checkpoints.CheckpointMismatchError when --train_dir holds another model's
    checkpoint, in one line."""
    latest = checkpoints.latest(config.train_dir)
    if latest:
        checkpoints.resume_from(latest, '--train_dir')
    scaffold = training.scaffold(summary_op)
    hooks = [tf.compat.v1.train.StopAtStepHook(last_step=config.max_steps)] + list(hooks)
    logger = next((h for h in hooks if isinstance(h, training.StepLoggerHook)), None)
    hooks.append(training.checkpoint_saver_hook(config.train_dir, config.checkpoint_steps,
                                                scaffold))
    try:
        with training.ending_at_ctrl_c(tf.compat.v1.train.MonitoredTrainingSession(
                master=master, is_chief=True, checkpoint_dir=config.train_dir,
                scaffold=scaffold, hooks=hooks, save_checkpoint_steps=None,
                save_checkpoint_secs=None, save_summaries_steps=config.summary_steps,
                log_step_count_steps=None, config=session_config,
                stop_grace_period_secs=STOP_GRACE_SECS)) as mon_sess:
            yield mon_sess
    except tf.errors.InvalidArgumentError as e:
        raise training.divergence_in_summary(e, logger.step if logger else 0) or e
