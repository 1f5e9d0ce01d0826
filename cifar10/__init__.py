"""The CIFAR-10 tutorial (tensorflow/models tutorials/image/cifar10)."""
