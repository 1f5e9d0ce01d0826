"""TensorFlow's distributed runtime for cifar10/dist_train.py: cluster flags, TF_CONFIG, the
servers.

Between-graph replication as in the TF1 docs: `ps` tasks hold the variables, each `worker` builds
its own graph (its towers over its own GPUs or logical CPUs, its own input pipeline) and updates
them, asynchronously or (--sync_replicas) through SyncReplicasOptimizer. Worker 0 is the chief:
it writes checkpoints and summaries.

Try it on one machine with the launcher, tools/cluster.py:

    python -m tools.cluster --ps 1 --workers 2 -- cifar10/dist_train.py --max_steps=200

On real hosts, start the same script on each, with the same lists:

    python cifar10/dist_train.py --ps_hosts=h0:2222 --worker_hosts=h1:2222,h2:2222 \\
        --job_name=ps --task_index=0                     # on h0
    python cifar10/dist_train.py --ps_hosts=h0:2222 --worker_hosts=h1:2222,h2:2222 \\
        --job_name=worker --task_index=0 --num_gpus=2    # on h1 (the chief); task 1 on h2

or set TF_CONFIG='{"cluster": {"ps": [...], "worker": [...]}, "task": {"type": "worker",
"index": 0}}' instead of the four flags. Each task then says, in one line at start, the port
and interfaces it listens on and that anyone who reaches them can run code as its user: keep
such a cluster on a private network (docs/cluster.md: "Who can reach this").
"""

import collections
import dataclasses
import json
import os
import socket
import sys
import threading
import time

import tensorflow as tf

from common import config

Cluster = collections.namedtuple('Cluster', 'spec job_name task_index num_workers')


class ClusterError(ValueError):
    """An inconsistent cluster description: reported in one line naming the flag or variable."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """The cluster flags, the TF1 ones plus --sync_replicas and a bounded wait for the cluster
    (all empty: no cluster, unless $TF_CONFIG describes one)."""
    ps_hosts: str = config.flag('', 'Comma-separated host:port list of the ps tasks.')
    worker_hosts: str = config.flag('', 'Comma-separated host:port list of the workers.')
    job_name: str = config.flag(None, 'This task\'s job: ps or worker.', enum=['ps', 'worker'])
    task_index: int = config.flag(0, 'Index of this task within its job.', lower_bound=0)
    sync_replicas: bool = config.flag(False, 'Aggregate every worker\'s gradients before each '
                                             'update (SyncReplicasOptimizer); default: '
                                             'asynchronous updates.')
    cluster_wait_secs: int = config.flag(
        120, 'Give up, with an error, when the ps tasks cannot be reached within this many '
        'seconds (a worker then waits for the chief as long as it takes, saying so every 30 s).',
        lower_bound=1)


DEFAULTS = Settings()


def from_settings(settings):
    """The cluster this task belongs to, from its Settings (the flags) or else $TF_CONFIG;
    None when they describe none.

    Raises ClusterError, naming the flag or variable, when the description is inconsistent.
    """
    if settings.ps_hosts or settings.worker_hosts or settings.job_name:
        ps = [h for h in settings.ps_hosts.split(',') if h]
        workers = [h for h in settings.worker_hosts.split(',') if h]
        job, index, source = settings.job_name, settings.task_index, '--job_name'
        if not job:
            raise ClusterError('--job_name=ps|worker is needed with --ps_hosts/--worker_hosts')
    elif os.environ.get('TF_CONFIG'):
        try:
            config = json.loads(os.environ['TF_CONFIG'])
            ps = config['cluster'].get('ps', [])
            workers = config['cluster'].get('worker', [])
            job, index = config['task']['type'], int(config['task']['index'])
        except (ValueError, KeyError, TypeError) as e:
            raise ClusterError('TF_CONFIG is not {"cluster": {"ps": [...], "worker": [...]}, '
                             '"task": {"type": ..., "index": ...}} (%s)' % e) from None
        source = 'TF_CONFIG'
        if job not in ('ps', 'worker'):
            raise ClusterError('TF_CONFIG task type %r: expected ps or worker' % job)
    else:
        return None
    if not ps or not workers:
        raise ClusterError('a cluster needs at least one ps and one worker host '
                         '(--ps_hosts, --worker_hosts or TF_CONFIG)')
    hosts = ps if job == 'ps' else workers
    if index >= len(hosts):
        raise ClusterError('%s: task index %d, but only %d %s host(s)'
                         % (source, index, len(hosts), job))
    spec = tf.compat.v1.train.ClusterSpec({'ps': ps, 'worker': workers})
    return Cluster(spec, job, index, len(workers))


def reach_ps_tasks(cl, target, config, seconds, hosts_text):
    """Returns once every ps task of cl answers (a tiny op runs on each), through this worker's
    server `target`; exits with a one-line error naming the hosts after `seconds`."""
    with Deadline(seconds, 'the cluster (%s) could not be reached within --cluster_wait_secs=%d'
                  % (hosts_text, seconds)):
        with tf.Graph().as_default():
            probes = []
            for i in range(len(cl.spec.job_tasks('ps'))):
                with tf.device('/job:ps/task:%d' % i):
                    probes.append(tf.random.uniform([]))  # stateful: runs there, not folded
            with tf.compat.v1.Session(target, config=config) as sess:
                sess.run(probes)


def exposure_line(cl):
    """The line a task prints at start: where its server listens, and that nobody is asked
    who they are. TensorFlow binds the task's port on every interface (0.0.0.0 and ::,
    whatever host its cluster address names)."""
    address = cl.spec.task_address(cl.job_name, cl.task_index)
    interfaces = ', '.join(name for _, name in socket.if_nameindex())
    return ('%s task %d: listening on port %s of every network interface here (%s), '
            'unauthenticated: whoever reaches it can run any computation as this user'
            % (cl.job_name, cl.task_index, address.rsplit(':', 1)[-1], interfaces))


class Worker(object):
    """A worker task of a cluster: its server, its place in the graph (variables on the ps
    tasks), the SyncReplicasOptimizer of --sync_replicas, the hooks and the session of a
    non-chief. Worker 0 is the chief."""

    def __init__(self, cl, server, sync_replicas, hosts_text):
        self.cl, self.server, self.hosts_text = cl, server, hosts_text
        self.is_chief = cl.task_index == 0
        self.master = server.target
        self._sync = SyncReplicas(cl) if sync_replicas else None
        self.wrap_optimizer = self._sync.wrap if self._sync else None

    def graph_device(self, device=None):
        return graph_device(self.cl, device)

    def hooks(self, session_config):
        """Its hooks (sync replicas', and the count of its own steps printed at the end);
        session_config is changed so that it talks to the ps tasks and itself only."""
        return worker_hooks(self.cl, session_config, self._sync, self.is_chief) + [
            _LocalStepsHook(self.cl.task_index)]

    def connect(self, session_config, seconds):
        """Returns once every ps task answers; a one-line error after `seconds`."""
        reach_ps_tasks(self.cl, self.master, session_config, seconds, self.hosts_text)

    def worker_session(self, scaffold, session_config, hooks, stop_grace_period_secs):
        """A non-chief's session: it waits for the chief's model, restores nothing and
        writes nothing."""
        return tf.compat.v1.train.MonitoredSession(
            session_creator=WorkerSessionCreator(self.cl.task_index, scaffold=scaffold,
                                                 master=self.master, config=session_config),
            hooks=hooks, stop_grace_period_secs=stop_grace_period_secs)


def join(settings, session_config):
    """This task's part in the cluster that settings (or TF_CONFIG) describe: a Worker (its
    server started with session_config). A ps task serves its variables until it is killed
    and never returns. Raises ClusterError (naming the flag) for an inconsistent description,
    or none."""
    cl = from_settings(settings)
    if cl is None:
        raise ClusterError(
            'no cluster: give --ps_hosts, --worker_hosts, --job_name and --task_index, or '
            'TF_CONFIG (to train on this machine alone: train.py or multi_gpu_train.py)')
    if cl.job_name == 'ps':
        server = tf.compat.v1.train.Server(cl.spec, job_name='ps', task_index=cl.task_index)
        print(exposure_line(cl), flush=True)
        print('ps task %d serving at %s' % (cl.task_index, server.target), flush=True)
        server.join()
    server = tf.compat.v1.train.Server(cl.spec, job_name='worker', task_index=cl.task_index,
                                       config=session_config)
    print(exposure_line(cl), flush=True)
    return Worker(cl, server, settings.sync_replicas, settings.ps_hosts or 'TF_CONFIG')


def graph_device(cl, device=None):
    """The device scope of the whole graph in a cluster: variables on the ps tasks (round
    robin) and everything else on this worker's `device`."""
    return tf.compat.v1.device(tf.compat.v1.train.replica_device_setter(
        worker_device='/job:worker/task:%d%s' % (cl.task_index, device or ''), cluster=cl.spec))


class _LocalStepsHook(tf.compat.v1.train.SessionRunHook):
    """Prints 'worker N: K local steps' at the end (before the session's queue-runner threads
    are stopped, which may complain once the other workers have gone)."""

    def __init__(self, task_index):
        self._task_index, self._steps = task_index, 0

    def after_run(self, run_context, run_values):
        self._steps += 1

    def end(self, session):
        print('worker %d: %d local steps' % (self._task_index, self._steps), flush=True)


class SyncReplicas(object):
    """--sync_replicas: `wrap` puts the optimiser in a SyncReplicasOptimizer that aggregates
    every worker's gradients; `hooks` are the session hooks it needs."""

    def __init__(self, cl):
        self._cl = cl
        self.optimizer = None

    def wrap(self, opt):
        self.optimizer = tf.compat.v1.train.SyncReplicasOptimizer(
            opt, replicas_to_aggregate=self._cl.num_workers,
            total_num_replicas=self._cl.num_workers)
        return self.optimizer

    def hooks(self, is_chief):
        return [self.optimizer.make_session_run_hook(is_chief),
                _AllWorkersJoinedHook(self._cl.task_index, self._cl.num_workers)]


def worker_hooks(cl, session_config, sync, is_chief):
    """A worker's part of its session: it talks to the ps tasks and itself only (workers do not
    wait for one another; session_config is changed so), and with sync (a SyncReplicas) its
    hooks. Returns the hooks."""
    session_config.device_filters.extend(['/job:ps', '/job:worker/task:%d' % cl.task_index])
    return sync.hooks(is_chief) if sync is not None else []


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


class WorkerSessionCreator(tf.compat.v1.train.SessionCreator):
    """A non-chief's session: waits for the chief to initialise or restore the model as long
    as it takes, checking every second (TensorFlow's WorkerSessionCreator checks every 30 s)
    and saying so every 30 s. Built on the public SessionManager.wait_for_session, whose
    DeadlineExceededError ends each 30 s of waiting."""

    def __init__(self, task_index, scaffold, master, config):
        self._task_index = task_index
        self._scaffold, self._master, self._config = scaffold, master, config

    def create_session(self):
        self._scaffold.finalize()
        manager = tf.compat.v1.train.SessionManager(
            local_init_op=self._scaffold.local_init_op,
            local_init_feed_dict=self._scaffold.local_init_feed_dict,
            ready_op=self._scaffold.ready_op,
            ready_for_local_init_op=self._scaffold.ready_for_local_init_op,
            graph=tf.compat.v1.get_default_graph(), recovery_wait_secs=1)
        wait_secs = 0  # the first try: at once, then 30 s at a time
        while True:
            try:
                return manager.wait_for_session(self._master, config=self._config,
                                                max_wait_secs=wait_secs)
            except tf.errors.DeadlineExceededError:
                print('worker %d: waiting for the chief (worker 0) to initialise or restore '
                      'the model' % self._task_index, flush=True)
                wait_secs = 30


class Deadline(object):
    """Exits the process with a one-line error if not cancelled within `seconds`.

    Session creation against a cluster whose ps cannot be reached waits forever; this bounds it.
    """

    def __init__(self, seconds, message):
        self._timer = threading.Timer(seconds, self._fail, [message])
        self._timer.daemon = True

    @staticmethod
    def _fail(message):
        sys.stderr.write('error: %s\n' % message)
        sys.stderr.flush()
        os._exit(1)

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
