"""Evaluate the CIFAR-10 model from its checkpoints (the tutorial's `cifar10_eval.py`).

    python cifar10/eval.py --eval_interval_secs=27        # polls /tmp/cifar10_train
    python cifar10/eval.py --run_once --checkpoint_dir=/tmp/cifar10_train

Restores the moving-average shadow variables, counts exactly --num_examples test images,
prints '<time>: precision @ 1 = 0.838' and writes a `Precision @ 1` summary to --eval_dir at
the checkpoint's global step. Each checkpoint is evaluated once; while there is none it waits
and says so; a checkpoint rotated away before it could be restored is skipped; Ctrl-C stops.
The model flags (--conv21, --use_fp16) not given on the command line are taken from the
trainer's saved flags in --checkpoint_dir (one line says so); given and different from them, or
a checkpoint of another model: one line naming the flag or file, exit status 1.
"""

import dataclasses
import datetime
import math
import time

from absl import flags
import numpy as np
import common
common.before_tensorflow()  # oneDNN kernels, TensorFlow's log lines: common/__init__.py
import tensorflow as tf

from cifar10 import inputs
from cifar10 import model
from common import checkpoints
from common import config as config_lib
from common import data
from common import entry
from common import training

FLAGS = flags.FLAGS

EVAL_FILES = {'test': data.cifar10_test_files, 'train_eval': data.cifar10_train_files}
EVAL_RECORDS = {'test': 10000, 'train_eval': 50000}


@dataclasses.dataclass(frozen=True)
class Config:
    """An evaluator: one field per flag (the original's names and defaults)."""
    eval_dir: str = config_lib.flag('/tmp/cifar10_eval', 'Directory where to write event logs.')
    eval_data: str = config_lib.flag('test', "Either 'test' or 'train_eval'.",
                                     enum=['test', 'train_eval'])
    checkpoint_dir: str = config_lib.flag('/tmp/cifar10_train',
                                          'Directory where to read model checkpoints.')
    eval_interval_secs: int = config_lib.flag(60 * 5, 'How often to run the eval.',
                                              lower_bound=1)
    num_examples: int = config_lib.flag(10000, 'Number of examples to run.', lower_bound=1)
    run_once: bool = config_lib.flag(False, 'Whether to run eval only once.')
    batch_size: int = model.batch_size_flag()
    data_dir: str = inputs.data_dir_flag()
    model: 'model.ModelFlags' = model.ModelFlags()
    precision: str = training.precision_flag()


def eval_once(saver, summary_writer, top_k_op, summary_op, ckpt_path, num_examples, batch_size,
              session_config=None, variables=None):
    """Evaluates one checkpoint on exactly num_examples examples.

    variables: the saver's variables by checkpoint name, checked against the checkpoint first
    (checkpoints.CheckpointMismatchError for a checkpoint of another model).
    Returns the precision @ 1, or None when the checkpoint vanished before it was restored.
    """
    global_step = checkpoints.step_of(ckpt_path)
    with tf.compat.v1.Session(config=session_config) as sess:
        try:
            if variables is not None:
                checkpoints.check_checkpoint(ckpt_path, variables, 'the model evaluated')
            saver.restore(sess, ckpt_path)
        except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError,
                tf.errors.DataLossError, ValueError) as e:
            if tf.io.gfile.exists(ckpt_path + '.index'):  # there, but not this model's
                problem = checkpoints.restore_failure(ckpt_path, variables or {}, e)
                raise checkpoints.CheckpointMismatchError(
                    'the checkpoint %s does not match the model evaluated (%s)'
                    % (ckpt_path, problem)) from None
            print('%s: checkpoint %s is gone (rotated away?), skipped'
                  % (datetime.datetime.now(), ckpt_path), flush=True)
            return None
        coord = tf.compat.v1.train.Coordinator()
        threads = tf.compat.v1.train.start_queue_runners(sess=sess, coord=coord)
        try:
            true_count = 0
            num_iter = int(math.ceil(num_examples / batch_size))
            for step in range(num_iter):
                predictions = sess.run(top_k_op)
                # The last batch runs past num_examples: count only what belongs.
                true_count += int(np.sum(predictions[:num_examples - step * batch_size]))
            precision_at_1 = true_count / num_examples
            print('%s: precision @ 1 = %.3f' % (datetime.datetime.now(), precision_at_1),
                  flush=True)
            summary = tf.compat.v1.Summary()
            summary.ParseFromString(sess.run(summary_op))
            summary.value.add(tag='Precision @ 1', simple_value=precision_at_1)
            summary_writer.add_summary(summary, global_step)
            summary_writer.flush()
        finally:
            coord.request_stop()
            coord.join(threads, stop_grace_period_secs=10)
    return precision_at_1


def wait_for_checkpoint(config):
    """The latest checkpoint in checkpoint_dir, waiting for the first one (saying so once)
    unless run_once."""
    said_waiting = False
    while True:
        ckpt_path = checkpoints.latest(config.checkpoint_dir,
                                       where='--checkpoint_dir=%s' % config.checkpoint_dir)
        if ckpt_path is not None:
            return ckpt_path
        if config.run_once:
            raise data.DataError('no checkpoint in --checkpoint_dir=%s' % config.checkpoint_dir)
        if not said_waiting:
            print('%s: no checkpoint in %s yet; waiting (checking every %d s)'
                  % (datetime.datetime.now(), config.checkpoint_dir, config.eval_interval_secs),
                  flush=True)
            said_waiting = True
        time.sleep(config.eval_interval_secs)


def evaluate(config, given=()):
    """Waits for the first checkpoint, builds the eval graph for its model (the model flags
    not in `given` taken from the trainer's), then evaluates each new checkpoint until
    stopped (or once, with run_once)."""
    if config.num_examples > EVAL_RECORDS[config.eval_data]:
        raise data.DataError('--num_examples=%d is more than the %d examples of --eval_data=%s'
                             % (config.num_examples, EVAL_RECORDS[config.eval_data],
                                config.eval_data))
    checkpoints.check_folder(config.checkpoint_dir, 'checkpoint_dir')
    with checkpoints.hold(config.eval_dir, 'eval_dir'):  # its one writer
        evaluate_checkpoints(config, given)


def evaluate_checkpoints(config, given):
    """evaluate's loop, in the --eval_dir it holds."""
    batches_dir = data.maybe_download_and_extract_cifar10(config.data_dir)
    ckpt_path = wait_for_checkpoint(config)
    config = dataclasses.replace(config, model=model.ModelFlags(**checkpoints.take_model_flags(
        config.checkpoint_dir, config.model.as_dict(), given)))
    session_config = tf.compat.v1.ConfigProto()
    session_config.gpu_options.allow_growth = True  # leave GPU memory to the trainer beside us
    training.set_precision(session_config, config.precision)
    with tf.Graph().as_default() as g:
        images, labels = inputs.inputs(EVAL_FILES[config.eval_data](batches_dir),
                                       config.batch_size, EVAL_RECORDS[config.eval_data])
        logits = model.inference(images, config.model.use_fp16, config.model.conv21)
        top_k_op = tf.nn.in_top_k(predictions=logits, targets=labels, k=1)
        variables = model.variables_to_restore()
        saver = tf.compat.v1.train.Saver(variables)
        summary_op = tf.compat.v1.summary.merge_all()
        summary_writer = tf.compat.v1.summary.FileWriter(config.eval_dir, g)
        last_evaluated = None
        try:
            while True:
                if ckpt_path != last_evaluated:
                    eval_once(saver, summary_writer, top_k_op, summary_op, ckpt_path,
                              config.num_examples, config.batch_size, session_config, variables)
                    last_evaluated = ckpt_path
                if config.run_once:
                    break
                time.sleep(config.eval_interval_secs)
                ckpt_path = checkpoints.latest(config.checkpoint_dir) or last_evaluated
        finally:
            summary_writer.close()


def main(argv):
    del argv
    evaluate(config_lib.from_flags(Config, FLAGS, 'cifar10'),
             config_lib.given(FLAGS, model.MODEL_FLAGS))


def define_flags():
    config_lib.define_flags(Config)


if __name__ == '__main__':
    entry.run(define_flags, main, interrupted='Interrupted: evaluator stopped.')
