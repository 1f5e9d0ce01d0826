"""Where a figure came from: the machine (CPU model, its vector extensions, cores, GPUs), the
versions of Python and the frameworks, and the git commit of the code. The report's results
and the benchmarks' headers both say it this way."""

import importlib.metadata
import os
import platform
import re
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_model_and_flags():
    """The CPU's model name and its vector extensions (avx*, amx*, fma, sse4*), from
    /proc/cpuinfo; no subprocess."""
    cpu, cpu_flags = platform.processor() or platform.machine(), []
    try:
        with open('/proc/cpuinfo') as f:
            text = f.read()
        cpu = re.search(r'^model name\s*:\s*(.*)$', text, re.M).group(1)
        flags_line = re.search(r'^flags\s*:\s*(.*)$', text, re.M).group(1).split()
        cpu_flags = sorted({f for f in flags_line if re.match(r'(avx|amx|fma|sse4)', f)})
    except (OSError, AttributeError):
        pass
    return cpu, cpu_flags


def hardware_facts():
    """The machine: CPU model, its vector extensions, cores, GPUs, and a one-line summary."""
    cpu, cpu_flags = cpu_model_and_flags()
    try:
        gpus = subprocess.run(['nvidia-smi', '-L'], capture_output=True, text=True,
                              timeout=10).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        gpus = []
    vector = ('AVX-512' + (' BF16' if 'avx512_bf16' in cpu_flags else '')
              if 'avx512f' in cpu_flags else 'AVX2' if 'avx2' in cpu_flags else 'no AVX2')
    summary = '%s, %d cores, %s, %s' % (cpu, os.cpu_count(), vector,
                                        ', '.join(gpus) if gpus else 'no GPU')
    return dict(hardware=summary, cpu=cpu, cpu_flags=cpu_flags, cores=os.cpu_count(), gpus=gpus)


def versions():
    """{'python': ..., 'tensorflow': ..., 'keras': ..., 'torch': ..., 'numpy': ...}; None for a
    package that is not installed."""
    out = {'python': platform.python_version()}
    for name, distributions in [('tensorflow', ['tensorflow-cpu', 'tensorflow']),
                                ('keras', ['keras']), ('torch', ['torch']), ('numpy', ['numpy'])]:
        out[name] = None
        for distribution in distributions:
            try:
                out[name] = importlib.metadata.version(distribution)
                break
            except importlib.metadata.PackageNotFoundError:
                pass
    return out


def git_commit():
    """The short commit of the checkout, or None outside git."""
    try:
        return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO,
                              capture_output=True, text=True).stdout.strip() or None
    except OSError:
        return None


# Environment variables that change a run's numbers (oneDNN's reordered float sums,
# deterministic kernels) or its thread counts: recorded as set, or None when not set.
NUMERICS_ENV = ['TF_ENABLE_ONEDNN_OPTS', 'TF_DETERMINISTIC_OPS', 'TF_NUM_INTRAOP_THREADS',
                'TF_NUM_INTEROP_THREADS', 'OMP_NUM_THREADS', 'TF_XLA_FLAGS']


def numerics_env(environ=None):
    """{name: value or None} of NUMERICS_ENV in environ (default os.environ)."""
    environ = os.environ if environ is None else environ
    return {name: environ.get(name) for name in NUMERICS_ENV}


def git_dirty():
    """True when the checkout has uncommitted changes to tracked files, False when clean,
    None outside git."""
    try:
        result = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                                cwd=REPO, capture_output=True, text=True)
    except OSError:
        return None
    if result.returncode != 0:
        return None
    return bool(result.stdout.strip())


def run_facts(data_root, environ=None):
    """What a result.json records about how a run was made, besides its commands: the machine,
    the TensorFlow version, the commit and whether the tree was dirty, the data root, and the
    environment variables that change numerics."""
    return dict(hardware_facts(), tensorflow=versions()['tensorflow'], git_commit=git_commit(),
                git_dirty=git_dirty(), data_root=os.path.abspath(data_root) if data_root else None,
                env=numerics_env(environ))
