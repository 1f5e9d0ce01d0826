"""The MNIST tutorials and the report's MNIST models."""
