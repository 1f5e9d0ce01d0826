"""The benchmark's models in the peer frameworks: idiomatic Keras 3 and PyTorch.

Each is the same network as our script (layers, sizes, padding), the same batch size (the
script's, bench.batch_size, handed over by the runner: the PyTorch worker never imports
TensorFlow) and the same optimiser (with its learning-rate schedule, weight decay and, for
CIFAR-10, the moving average of the weights), trained on one batch held in memory, as
`ours_fed` is:
  keras    keras.Sequential, compile() (its default compiled train step) and fit() on a
           tf.data dataset of that batch.
  pytorch  torch.nn.Sequential in its default NCHW layout, threads = cores, a plain loop of
           zero_grad / forward / backward / step.
Keras and PyTorch are benchmark-only dependencies: pip install -e '.[bench]' and
pip install torch==2.13.0 (see the README).
"""

import os

import numpy as np

import bench

# The CIFAR-10 schedule (cifar10/model.py): 0.1, times 0.1 every 350 epochs of 50,000 images.
CIFAR_DECAY_STEPS = int(50000 / 128 * 350)


def _batch(model, n):
    """A batch of n examples of the model's input shape: random images, random labels (the
    speed does not depend on the values)."""
    rng = np.random.RandomState(0)
    shape = {'cifar10': [n, 24, 24, 3]}.get(model, [n, 784])
    images = rng.standard_normal(shape).astype(np.float32)
    if model == 'mlp':
        images = (images * 80 + 33).clip(0, 255)  # raw pixels, as mnist/mlp.py feeds them
    return images, rng.randint(0, 10, n).astype(np.int64)


# --- Keras 3 ---------------------------------------------------------------------------------

def keras_model(model):
    """(keras.Sequential, optimizer) for `model`."""
    import keras
    import tensorflow as tf
    from keras import layers
    if model == 'cnn_mnist':
        net = keras.Sequential([
            keras.Input([784]), layers.Reshape([28, 28, 1]),
            layers.Conv2D(32, 5, padding='same', activation='relu'), layers.MaxPooling2D(2),
            layers.Conv2D(64, 5, padding='same', activation='relu'), layers.MaxPooling2D(2),
            layers.Flatten(), layers.Dense(1024, activation='relu'), layers.Dropout(0.4),
            layers.Dense(10)])
        return net, keras.optimizers.SGD(0.001)
    if model == 'mnist_with_summaries':
        net = keras.Sequential([keras.Input([784]), layers.Dense(500, activation='relu'),
                                layers.Dropout(0.1), layers.Dense(10)])
        return net, keras.optimizers.Adam(0.001)
    if model == 'deep_cnn':
        class Schedule(keras.optimizers.schedules.LearningRateSchedule):
            def __call__(self, step):
                return 0.0001 + 0.0029 * keras.ops.exp(-keras.ops.cast(step, 'float32') / 2000.0)
        net = keras.Sequential([
            keras.Input([784]), layers.Reshape([28, 28, 1]),
            layers.Conv2D(6, 6, padding='same', activation='relu'),
            layers.Conv2D(12, 5, strides=2, padding='same', activation='relu'),
            layers.Conv2D(24, 4, strides=2, padding='same', activation='relu'),
            layers.Flatten(), layers.Dense(200, activation='relu'), layers.Dropout(0.25),
            layers.Dense(10)])
        return net, keras.optimizers.Adam(Schedule())
    if model == 'cifar10':
        def lrn(x):
            return tf.nn.local_response_normalization(x, 4, bias=1.0, alpha=0.001 / 9.0,
                                                      beta=0.75)
        decay = keras.regularizers.L2(0.004 / 2)  # TF's wd * l2_loss(w) = wd / 2 * sum(w^2)
        net = keras.Sequential([
            keras.Input([24, 24, 3]),
            layers.Conv2D(64, 5, padding='same', activation='relu'),
            layers.MaxPooling2D(3, 2, padding='same'), layers.Lambda(lrn),
            layers.Conv2D(64, 5, padding='same', activation='relu'), layers.Lambda(lrn),
            layers.MaxPooling2D(3, 2, padding='same'), layers.Flatten(),
            layers.Dense(384, activation='relu', kernel_regularizer=decay),
            layers.Dense(192, activation='relu', kernel_regularizer=decay),
            layers.Dense(10)])
        schedule = keras.optimizers.schedules.ExponentialDecay(0.1, CIFAR_DECAY_STEPS, 0.1,
                                                               staircase=True)
        return net, keras.optimizers.SGD(schedule, use_ema=True, ema_momentum=0.9999)
    if model == 'mlp':
        net = keras.Sequential([keras.Input([784]), layers.Dense(1024, activation='relu'),
                                layers.Dense(10)])
        return net, keras.optimizers.SGD(0.0001)
    raise ValueError(model)


def keras_workload(model, batch, seconds_per_call=1.0):
    """fit() on the in-memory batch; each call of the Workload's step runs one fit() of as many
    steps as take about seconds_per_call (fit() has a fixed cost per call)."""
    import time

    import keras
    import tensorflow as tf
    net, optimizer = keras_model(model)
    net.compile(optimizer=optimizer,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images, labels = _batch(model, batch)
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()

    def fit(steps):
        net.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    fit(2)
    start = time.perf_counter()
    fit(3)
    steps = max(1, int(seconds_per_call / ((time.perf_counter() - start) / 3)))
    return bench.Workload(len(images) * steps, lambda: fit(steps), None, lambda: None)


# --- PyTorch ---------------------------------------------------------------------------------

def torch_model(model):
    """(torch.nn.Sequential, optimizer, per-step callback or None) for `model`."""
    import torch
    from torch import nn
    if model == 'cnn_mnist':
        net = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)),
            nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Dropout(0.4),
            nn.Linear(1024, 10))
        return net, torch.optim.SGD(net.parameters(), lr=0.001), None
    if model == 'mnist_with_summaries':
        net = nn.Sequential(nn.Linear(784, 500), nn.ReLU(), nn.Dropout(0.1), nn.Linear(500, 10))
        return net, torch.optim.Adam(net.parameters(), lr=0.001), None
    if model == 'deep_cnn':
        net = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)),
            nn.Conv2d(1, 6, 6, padding='same'), nn.ReLU(),
            nn.Conv2d(6, 12, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(12, 24, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(7 * 7 * 24, 200), nn.ReLU(), nn.Dropout(0.25),
            nn.Linear(200, 10))
        optimizer = torch.optim.Adam(net.parameters(), lr=0.003)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: (0.0001 + 0.0029 * np.exp(-step / 2000.0)) / 0.003)
        return net, optimizer, schedule.step
    if model == 'cifar10':
        net = nn.Sequential(
            nn.Conv2d(3, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1),
            nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0),
            nn.Conv2d(64, 64, 5, padding=2), nn.ReLU(),
            nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0),
            nn.MaxPool2d(3, 2, padding=1), nn.Flatten(),
            nn.Linear(6 * 6 * 64, 384), nn.ReLU(), nn.Linear(384, 192), nn.ReLU(),
            nn.Linear(192, 10))
        decayed = [net[9].weight, net[11].weight]  # local3 and local4, as in model.py
        others = [p for p in net.parameters() if all(p is not d for d in decayed)]
        optimizer = torch.optim.SGD([{'params': decayed, 'weight_decay': 0.004},
                                     {'params': others}], lr=0.1)
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, CIFAR_DECAY_STEPS, 0.1)
        ema = torch.optim.swa_utils.AveragedModel(
            net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.9999))

        def after_step():
            schedule.step()
            ema.update_parameters(net)
        return net, optimizer, after_step
    if model == 'mlp':
        net = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 10))
        return net, torch.optim.SGD(net.parameters(), lr=0.0001), None
    raise ValueError(model)


def torch_workload(model, batch):
    import torch
    torch.set_num_threads(os.cpu_count())
    net, optimizer, after_step = torch_model(model)
    net.train()
    images, labels = (torch.from_numpy(a) for a in _batch(model, batch))
    if model == 'cifar10':
        images = images.permute(0, 3, 1, 2).contiguous()  # NHWC -> PyTorch's NCHW
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad()
        loss = loss_fn(net(images), labels)
        loss.backward()
        optimizer.step()
        if after_step:
            after_step()
    return bench.Workload(len(images), step, None, lambda: None)


def build(model, variant, batch=None):
    """The Workload of `model` in `variant`, 'keras' or 'pytorch', on batches of `batch`
    (default: the script's, bench.batch_size, which imports TensorFlow)."""
    batch = batch or bench.batch_size(model)
    return keras_workload(model, batch) if variant == 'keras' else torch_workload(model, batch)
