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
