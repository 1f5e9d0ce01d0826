"""What the training scripts share: tower devices, gradient averaging, the step log line,
the train directory (resume, --fresh) and the saved flags of each run."""

import datetime
import json
import os
import sys
import time

from absl import flags
import numpy as np
import tensorflow as tf

# The original's log line, every log_frequency steps.
STEP_LOG_FORMAT = '%s: step %d, loss = %.2f (%.1f examples/sec; %.3f sec/batch)'


def tower_devices(num_towers, log_device_placement=False):
    """Chooses a device per tower and the session config that makes those devices exist.

    Towers go to /gpu:0..N-1 when that many GPUs are visible. Otherwise they go to N logical
    CPU devices (/cpu:0..N-1, `ConfigProto(device_count={'CPU': N})`), with one warning line,
    so that the multi-tower code path runs, and is tested, on a CPU-only machine. Soft
    placement stays off there: it would silently put every tower on /cpu:0.

    Returns (devices, config).
    """
    gpus = tf.config.list_physical_devices('GPU')
    if len(gpus) >= num_towers:
        devices = ['/gpu:%d' % i for i in range(num_towers)]
        config = tf.compat.v1.ConfigProto(allow_soft_placement=True,
                                          log_device_placement=log_device_placement)
        # Take GPU memory as needed, so that eval.py runs beside training on the same card.
        config.gpu_options.allow_growth = True
        return devices, config
    print('WARNING: %d GPU(s) visible for %d tower(s): running the towers on %d logical CPU '
          'device(s) instead' % (len(gpus), num_towers, num_towers), file=sys.stderr, flush=True)
    devices = ['/cpu:%d' % i for i in range(num_towers)]
    config = tf.compat.v1.ConfigProto(device_count={'CPU': num_towers},
                                      allow_soft_placement=False,
                                      log_device_placement=log_device_placement)
    return devices, config


def average_gradients(tower_grads):
    """Averages each variable's gradient over the towers.

    Args:
      tower_grads: one list of (gradient, variable) per tower, variables in the same order.
    Returns:
      a list of (mean gradient, variable): the mean over towers of each variable's gradient.
    """
    average_grads = []
    for grad_and_vars in zip(*tower_grads):
        grads = [tf.expand_dims(g, 0) for g, _ in grad_and_vars]
        grad = tf.reduce_mean(tf.concat(grads, 0), 0)
        average_grads.append((grad, grad_and_vars[0][1]))
    return average_grads


class StepLoggerHook(tf.compat.v1.train.SessionRunHook):
    """Checks the loss every step and prints the original log line every `log_frequency` steps.

    examples/sec counts all towers (batch_size * num_towers per step); sec/batch is the step
    time divided by the number of towers, as in the original multi-GPU trainer.
    """

    def __init__(self, loss, batch_size, num_towers=1, log_frequency=10):
        self._loss = loss
        self._batch_size = batch_size
        self._num_towers = num_towers
        self._log_frequency = log_frequency

    def begin(self):
        self._global_step = tf.compat.v1.train.get_global_step()
        self._last_time = None

    def before_run(self, run_context):
        return tf.compat.v1.train.SessionRunArgs([self._loss, self._global_step])

    def after_run(self, run_context, run_values):
        loss_value, step = run_values.results  # step as read before this run's update
        if np.isnan(loss_value):
            raise RuntimeError('Model diverged with loss = NaN at step %d' % step)
        now = time.time()
        if self._last_time is None:
            self._last_time, self._last_step = now, step
        elif step % self._log_frequency == 0:
            duration = (now - self._last_time) / max(step - self._last_step, 1)
            self._last_time, self._last_step = now, step
            print(STEP_LOG_FORMAT % (datetime.datetime.now(), step, loss_value,
                                     self._batch_size * self._num_towers / duration,
                                     duration / self._num_towers), flush=True)


def prepare_train_dir(train_dir, fresh):
    """Creates train_dir. With fresh=True an existing train_dir is moved aside, never deleted.

    Returns the latest checkpoint to resume from, or None.
    """
    if fresh and os.path.isdir(train_dir) and os.listdir(train_dir):
        aside = '%s.old-%s' % (train_dir.rstrip('/'),
                               datetime.datetime.now().strftime('%Y%m%d-%H%M%S'))
        os.rename(train_dir, aside)
        print('Moved the previous %s aside to %s' % (train_dir, aside), flush=True)
    os.makedirs(train_dir, exist_ok=True)
    latest = tf.train.latest_checkpoint(train_dir)
    if latest:
        print('Resuming from %s (use --fresh to start over)' % latest, flush=True)
    return latest


def save_flags(train_dir, flag_values):
    """Writes this project's flags (effective values) to train_dir/flags-<time>.json.

    Returns the path written.
    """
    main_module = sys.argv[0]
    values = {}
    for module, module_flags in flag_values.flags_by_module_dict().items():
        if module == main_module or module.split('.')[0] in ('cifar10', 'mnist', 'common'):
            values.update({f.name: f.value for f in module_flags})
    now = datetime.datetime.now()
    record = {
        'script': os.path.basename(main_module),
        'argv': sys.argv,
        'flags': values,
        'tensorflow': tf.__version__,
        'time': now.isoformat(timespec='seconds'),
    }
    path = os.path.join(train_dir, 'flags-%s.json' % now.strftime('%Y%m%d-%H%M%S'))
    with open(path, 'w') as f:
        json.dump(record, f, indent=2, sort_keys=True)
    return path


def define_log_dir_flag(default, help_text):
    """Defines the tutorials' --log_dir in place of absl.logging's own --log_dir (a folder for
    log files, which these scripts never write)."""
    if 'log_dir' in flags.FLAGS:
        delattr(flags.FLAGS, 'log_dir')
    flags.DEFINE_string('log_dir', default, help_text)
