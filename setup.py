"""tf-classics: the classic TensorFlow 1 tutorials on TensorFlow 2.21 (tf.compat.v1 graph mode)."""
from setuptools import setup

setup(
    name='tf-classics',
    version='0.1.0',
    description='The classic TF1 tutorials (CIFAR-10, MNIST) ported faithfully to TensorFlow 2.21.',
    python_requires='>=3.9',
    packages=['common', 'cifar10', 'mnist', 'bench', 'tools'],
    install_requires=[
        'tensorflow-cpu==2.21.0',
        'numpy',
        'absl-py',
        'tensorboard',
    ],
    extras_require={
        # The GPU build of the same TensorFlow release (uninstall tensorflow-cpu first).
        'gpu': ['tensorflow[and-cuda]==2.21.0'],
        'plot': ['matplotlib'],  # mnist/mlp.py --plot_samples
        # python -m tools.sweep (never needed to train). 4.9 brought the names it uses
        # (RetryHeartbeatStaleTrialCallback); tested with 5.0.
        'sweep': ['optuna>=4.9'],
        # psycopg: the PostgreSQL driver of the sweep's test against a real server (and of
        # --storage=postgresql://...; SQLAlchemy 2.1 takes it for postgresql:// URLs).
        'test': ['pytest', 'matplotlib', 'optuna>=4.9', 'pytest-xdist', 'psycopg[binary]',
                 'sqlalchemy>=2.1'],
        # python -m bench: the peers. torch from PyPI is a CUDA build of several GB (it runs
        # on a CPU too); the CPU-only build comes from PyTorch's own index
        # (pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu).
        'bench': ['keras>=3', 'torch==2.13.0'],
    },
)
