"""The local cluster launcher: a whole cluster of the trainers on this machine.

    python -m tools.cluster --ps 1 --workers 2 -- cifar10/dist_train.py --max_steps=200

It picks free ports on 127.0.0.1, prefixes each process's output with its role, stops the ps
tasks when the workers finish, and exits non-zero if a worker failed. TensorFlow's gRPC server
listens on every interface and has no authentication, so the launcher runs the tasks in a
private network namespace that holds only loopback (`unshare`), and says so in one line where
the system allows none. The trainers' side of a cluster is common/cluster.py.
"""

import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

from absl import app
from absl import flags

from common import entry

FLAGS = flags.FLAGS

# ---------------------------------------------------------------------------------------------
# The launcher: a whole cluster on 127.0.0.1, in a network namespace of its own
# ---------------------------------------------------------------------------------------------

# Set (to 1) in the launcher once it runs inside its own network namespace.
PRIVATE_NETWORK_ENV = 'TF_CLASSICS_CLUSTER_PRIVATE_NETWORK'


def private_network_command():
    """(the command prefix that runs a program in a new network namespace, None) or (None, why
    not). The namespace is new and empty: only a loopback interface, and no route to or from
    any other host. Root needs no user namespace; anyone else gets one that maps them to root
    inside (so that they may bring its loopback up), where the kernel allows it."""
    unshare = shutil.which('unshare')
    if unshare is None:
        return None, 'no unshare command on PATH (util-linux)'
    candidates = [[unshare, '--user', '--map-root-user', '--net']]
    if os.geteuid() == 0:
        candidates.insert(0, [unshare, '--net'])
    why = ''
    for prefix in candidates:
        probe = subprocess.run(prefix + ['true'], capture_output=True, text=True)
        if probe.returncode == 0:
            return prefix, None
        why = (probe.stderr.strip().splitlines() or ['exit status %d' % probe.returncode])[-1]
    return None, why


def loopback_up():
    """Brings up the loopback interface of this network namespace (a new one has it down)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack('16sH22x', b'lo', 0)
        flags = struct.unpack('16sH22x', fcntl.ioctl(s, siocgifflags, request))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack('16sH22x', b'lo', flags | iff_up))


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(('127.0.0.1', 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _pump(stream, prefix, out):
    for line in iter(stream.readline, ''):
        out.write(prefix + line)
        out.flush()


def launch(script_args, num_ps, num_workers, out=sys.stdout, env=None):
    """Runs `python <script_args>` as num_ps ps tasks and num_workers workers on 127.0.0.1.

    Returns the workers' exit codes (ps tasks are stopped once every worker has ended).
    """
    ports = free_ports(num_ps + num_workers)
    ps_hosts = ','.join('127.0.0.1:%d' % p for p in ports[:num_ps])
    worker_hosts = ','.join('127.0.0.1:%d' % p for p in ports[num_ps:])
    env = dict(env or os.environ, PYTHONUNBUFFERED='1')
    procs, pumps = {}, []
    roles = [('ps', i) for i in range(num_ps)] + [('worker', i) for i in range(num_workers)]
    for job, i in roles:
        cmd = [sys.executable] + list(script_args) + [
            '--ps_hosts=' + ps_hosts, '--worker_hosts=' + worker_hosts,
            '--job_name=' + job, '--task_index=%d' % i]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env)
        procs[(job, i)] = proc
        pump = threading.Thread(target=_pump, args=(proc.stdout, '[%s%d] ' % (job, i), out),
                                daemon=True)
        pump.start()
        pumps.append(pump)
    codes = []
    try:
        for i in range(num_workers):
            codes.append(procs[('worker', i)].wait())
    finally:
        for (job, i), proc in procs.items():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for pump in pumps:
            pump.join(timeout=5)
    return codes


def enter_private_network(argv):
    """Runs this launcher again (exec: same process) inside a new network namespace holding
    only loopback, so that no other host reaches its tasks; says in one line where it is, or
    that the system allows no such namespace and the tasks listen on every interface."""
    if os.environ.pop(PRIVATE_NETWORK_ENV, None) == '1':  # the run again, after unshare
        interfaces = [name for _, name in socket.if_nameindex()]
        if interfaces != ['lo']:
            sys.exit('error: the private network namespace has interfaces %s, expected lo '
                     'alone' % ', '.join(interfaces))
        try:
            loopback_up()
        except OSError as e:
            sys.exit('error: cannot bring up loopback in the private network namespace (%s)'
                     % e)
        print('cluster: the tasks run in a private network namespace that has only loopback: '
              'no other host can reach them', flush=True)
        return
    prefix, why = private_network_command()
    if prefix is None:
        print('cluster: warning: no private network namespace here (%s): each task\'s '
              'unauthenticated gRPC server listens on every interface of this machine while '
              'the cluster runs' % why, flush=True)
        return
    os.environ[PRIVATE_NETWORK_ENV] = '1'
    sys.stdout.flush()
    os.execv(prefix[0], prefix + [sys.executable, '-m', 'tools.cluster'] + list(argv))


def define_flags():
    flags.DEFINE_integer('ps', 1, 'Number of ps tasks.', lower_bound=1)
    flags.DEFINE_integer('workers', 2, 'Number of workers.', lower_bound=1)


def main(argv):
    """argv: the program, then the trainer and its flags (after --)."""
    script = argv[1:]
    if not script or not script[0].endswith('.py'):
        raise app.UsageError('give the trainer after --, e.g. python -m tools.cluster --ps 1 '
                             '--workers 2 -- cifar10/dist_train.py')
    enter_private_network(sys.argv[1:])
    start = time.time()
    codes = launch(script, FLAGS.ps, FLAGS.workers)
    failed = [i for i, c in enumerate(codes) if c != 0]
    if failed:
        print('cluster: worker(s) %s failed (exit %s)' % (
            ', '.join(map(str, failed)), ', '.join(str(codes[i]) for i in failed)),
            file=sys.stderr)
        return 1
    print('cluster: %d worker(s) finished in %.1f s' % (FLAGS.workers, time.time() - start))
    return 0


if __name__ == '__main__':
    entry.run(define_flags, main)
