import common  # noqa: F401  (before TensorFlow: its CPU defaults, see common/__init__.py)
