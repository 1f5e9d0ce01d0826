"""Train the CIFAR-10 model on a cluster of machines: parameter-server (ps) tasks hold the
variables, workers train (between-graph replication, in the shape of TensorFlow's
"Distributed TensorFlow" how-to trainer and inception's `inception_distributed_train.py`:
cluster, server, `replica_device_setter`, `SyncReplicasOptimizer`, the supervised session).

    python cifar10/dist_train.py --ps_hosts=h0:2222 --worker_hosts=h1:2222,h2:2222 \\
        --job_name=ps --task_index=0                     # on h0
    python cifar10/dist_train.py --ps_hosts=h0:2222 --worker_hosts=h1:2222,h2:2222 \\
        --job_name=worker --task_index=0 --num_gpus=2    # on h1 (the chief); task 1 on h2
    python -m tools.cluster --ps 1 --workers 2 -- cifar10/dist_train.py   # all on this machine

or TF_CONFIG='{"cluster": {"ps": [...], "worker": [...]}, "task": {"type": "worker",
"index": 0}}' instead of the four host flags (what Kubeflow's TFJob and tools.cluster set).
Each worker builds multi_gpu_train.py's graph (its --num_gpus towers over its own GPUs or
logical CPUs, its own input pipeline) with the variables on the ps tasks, and updates them
asynchronously or, with --sync_replicas, through SyncReplicasOptimizer. Worker 0 is the
chief: it restores and writes --train_dir (checkpoints, summaries, flags); the others wait
for it and write nothing. Anyone who reaches a task's port can run code as its user: keep
a cluster on a private network (docs/cluster.md). The cluster itself (flags, TF_CONFIG,
servers, the non-chief's session) is common/cluster.py.
"""

import contextlib
import dataclasses

from absl import flags
import common
common.before_tensorflow()  # oneDNN kernels, TensorFlow's log lines: common/__init__.py
import tensorflow as tf

from cifar10 import multi_gpu_train
from cifar10 import train_lib
from common import cluster
from common import config as config_lib
from common import data
from common import entry
from common import training

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Config:
    """dist_train.py's flags: the trainers' (train_lib.Config, with --num_gpus towers per
    worker) and the cluster's (cluster.Settings)."""
    training: train_lib.Config = train_lib.DEFAULTS
    cluster: 'cluster.Settings' = cluster.DEFAULTS


def train(config, record):
    """This task's part of training CIFAR-10 on the cluster that config.cluster (or
    TF_CONFIG) describes: a ps task serves the variables and never returns; a worker trains to
    --max_steps. record: the run's training.flags_record, saved by the chief in --train_dir.
    Raises cluster.ClusterError (one line) when no cluster is described."""
    tc = config.training
    devices, session_config = train_lib.tower_session_config(tc)
    worker = cluster.join(config.cluster, session_config)  # a ps task serves here
    batches_dir = data.maybe_download_and_extract_cifar10(tc.data_dir)
    # The chief holds --train_dir; the variables go to the ps tasks, the rest to this worker.
    folder = train_lib.run_folder(tc, record) if worker.is_chief else contextlib.nullcontext()
    with folder, training.seeded_graph(tc.seed), worker.graph_device('/cpu:0'):
        train_op, losses, summary_op = multi_gpu_train.training_graph_from_files(
            tc, batches_dir, devices, worker.wrap_optimizer)

        hooks = [train_lib.step_logger(tc, losses)] + worker.hooks(session_config)
        worker.connect(session_config, config.cluster.cluster_wait_secs)
        with supervised_session(tc, worker, session_config, hooks, summary_op) as mon_sess:
            while not mon_sess.should_stop():
                mon_sess.run(train_op)


def supervised_session(config, worker, session_config, hooks, summary_op):
    """The chief's session restores, checkpoints and summarises --train_dir; another
    worker's waits for the chief's model and writes nothing. Both stop at --max_steps."""
    if worker.is_chief:
        return train_lib.monitored_session(config, session_config, hooks, summary_op,
                                           master=worker.master)
    hooks = [tf.compat.v1.train.StopAtStepHook(last_step=config.max_steps)] + hooks
    return worker.worker_session(training.scaffold(summary_op), session_config, hooks,
                                 train_lib.STOP_GRACE_SECS)


def define_flags():
    config_lib.define_flags(Config)
    flags.DEFINE_integer('num_gpus', train_lib.DEFAULTS.num_gpus,
                         'How many GPUs (towers) each worker uses.', lower_bound=1)


def main(argv):
    del argv
    train(config_lib.from_flags(Config, FLAGS, 'cifar10'), training.flags_record(FLAGS))


if __name__ == '__main__':
    entry.run(define_flags, main, 'initial_learning_rate', errors=(cluster.ClusterError,))
