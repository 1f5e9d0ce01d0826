"""A throwaway PostgreSQL server for the tests: Debian's `postgresql` package (its binaries in
/usr/lib/postgresql/N/bin), `initdb` in a temporary folder (as user postgres when the tests
run as root: initdb refuses root), listening on 127.0.0.1 only, password logins."""

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile


def bin_dir():
    """The folder of initdb and pg_ctl, or None when PostgreSQL is not installed."""
    found = shutil.which('initdb')
    if found:
        return os.path.dirname(found)
    folders = sorted(glob.glob('/usr/lib/postgresql/*/bin'),
                     key=lambda d: int(d.split('/')[-2]) if d.split('/')[-2].isdigit() else 0)
    for folder in reversed(folders):
        if os.path.exists(os.path.join(folder, 'initdb')):
            return folder
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Server(object):
    """start() -> a server on 127.0.0.1:port whose superuser `postgres` has a random password;
    sql() runs statements as it; stop() kills it and removes its folder."""

    def __init__(self):
        self.bin = bin_dir()
        self.folder = self.port = None
        self.password = 'pg-' + secrets.token_hex(8)
        self._user = None
        if os.geteuid() == 0:  # initdb and the server refuse to run as root
            self._user = 'postgres'

    def _run(self, *cmd, **kwargs):
        return subprocess.run(list(cmd), user=self._user, cwd=self.folder, capture_output=True,
                              text=True, check=True, timeout=120, **kwargs)

    def start(self):
        self.folder = tempfile.mkdtemp(prefix='tf-classics-pg-')
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        pwfile = os.path.join(self.folder, 'pwfile')
        with open(pwfile, 'w') as f:
            f.write(self.password + '\n')
        if self._user:
            os.chown(pwfile, pwd.getpwnam(self._user).pw_uid, -1)
        data = os.path.join(self.folder, 'data')
        self._run(os.path.join(self.bin, 'initdb'), '-D', data, '-U', 'postgres',
                  '-A', 'scram-sha-256', '--pwfile=' + pwfile)
        os.remove(pwfile)
        self.port = _free_port()
        self._run(os.path.join(self.bin, 'pg_ctl'), '-D', data, '-l',
                  os.path.join(self.folder, 'log'), '-w', '-o',
                  '-p %d -k %s -c listen_addresses=127.0.0.1' % (self.port, self.folder),
                  'start')
        return self

    def sql(self, statement, user='postgres', password=None, database='postgres'):
        """Runs one statement (CREATE DATABASE cannot share a transaction) through psql."""
        env = dict(os.environ, PGPASSWORD=password or self.password)
        return subprocess.run(
            ['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p',
             str(self.port), '-U', user, '-d', database, '-c', statement],
            env=env, capture_output=True, text=True, check=True, timeout=60).stdout

    def stop(self):
        if self.port is not None:
            subprocess.run([os.path.join(self.bin, 'pg_ctl'), '-D',
                            os.path.join(self.folder, 'data'), '-m', 'immediate', 'stop'],
                           user=self._user, capture_output=True, timeout=60)
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
