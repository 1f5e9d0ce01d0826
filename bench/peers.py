"""The benchmark's models in the peer frameworks: idiomatic Keras 3 and PyTorch, each run the
fastest way we found for it.

Each is the same network as our script (layers, sizes, padding), the same batch size (the
script's, bench.batch_size, handed over by the runner: the PyTorch worker never imports
TensorFlow) and the same optimiser (with its learning-rate schedule, weight decay and, for
CIFAR-10, the moving average of the weights), trained on one batch held in memory, as
`ours_fed` is. Several settings of each peer train that same model; each is timed for
probe_seconds (after its first steps) and the fastest is kept and named (Workload.variant):
  keras    keras.Sequential, compile() and ONE long fit() on a tf.data dataset repeating the
           batch, running in a thread: a callback stamps the batch ends that open and close
           each timed window (and holds the fit between windows), so that fit()'s fixed cost
           is paid once, not in every window. Settings: jit_compile False / True (XLA; Keras'
           'auto' means False on a CPU) x steps_per_execution 1 / 10 (1 alone for the MLP,
           whose full-batch step takes a second: 10 of them could not matter, and would make
           each probe 10 steps long).
  pytorch  torch.nn.Sequential, threads = cores, a plain loop of zero_grad / forward /
           backward / step. Settings: eager in the default NCHW layout; eager channels_last
           (the convolutional models); torch.compile of the faster of those two (inductor,
           which needs a C++ compiler; where it fails it is left out, and said).
Keras and PyTorch are benchmark-only dependencies: pip install -e '.[bench]' (see the README).
"""

import os
import sys
import threading
import time

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


class LongFit(object):
    """One fit() of an endless epoch, in a thread, held between windows by a callback:
    window(seconds) lets it train until a batch end at least `seconds` (and 2 steps) after it
    resumed, and returns (steps, elapsed) between those two stamps. With steps_per_execution k
    the callback sees every k-th batch end, and k steps each time."""

    def __init__(self, net, dataset, min_steps=2):
        import keras
        self._min_steps = min_steps
        self._resume, self._done = threading.Event(), threading.Event()
        self._window = self._seconds = self._result = self._error = None
        self._stop = False
        owner = self

        class Stamp(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                owner._batch_end(batch, self.model)
        self._thread = threading.Thread(target=self._fit, args=(net, dataset, Stamp()),
                                        daemon=True)
        self._thread.start()
        self._wait()  # parked after its first batch (tracing, compiling)

    def _fit(self, net, dataset, callback):
        try:
            net.fit(dataset, epochs=1, steps_per_epoch=10 ** 12, verbose=0, shuffle=False,
                    callbacks=[callback])
        except Exception as e:  # noqa: BLE001 (handed to the waiting window())
            self._error = e
        finally:
            self._stop = True
            self._done.set()

    def _batch_end(self, batch, model):
        now = time.perf_counter()
        if self._window is not None:
            first, start = self._window
            if batch - first < self._min_steps or now - start < self._seconds:
                return
            self._result, self._window = (batch - first, now - start), None
        self._done.set()
        self._resume.wait()
        self._resume.clear()
        if self._stop:
            model.stop_training = True
        else:
            self._window = (batch, time.perf_counter())

    def _wait(self):
        self._done.wait()
        self._done.clear()
        if self._error is not None:
            raise self._error

    def window(self, seconds):
        if self._stop:
            raise RuntimeError('the fit has ended')
        self._seconds = seconds
        self._resume.set()
        self._wait()
        return self._result

    def close(self):
        self._stop = True
        self._resume.set()
        self._thread.join(timeout=60)


KERAS_SETTINGS = [(False, 1), (True, 1), (False, 10), (True, 10)]


def keras_settings(model):
    """The (jit_compile, steps_per_execution) settings tried for `model`."""
    return [s for s in KERAS_SETTINGS if model != 'mlp' or s[1] == 1]


def keras_workload(model, batch, probe_seconds=1.0, log=None):
    """The fastest of keras_settings(model) ((jit_compile, steps_per_execution) pairs) for
    `model`: a Workload timing windows of one long fit()."""
    import keras
    import tensorflow as tf
    images, labels = _batch(model, batch)
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()

    def start(jit_compile, steps_per_execution):
        net, optimizer = keras_model(model)
        net.compile(optimizer=optimizer,
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    jit_compile=jit_compile, steps_per_execution=steps_per_execution)
        return LongFit(net, dataset)

    def name(setting):
        return 'jit_compile=%s, steps_per_execution=%d' % setting
    setting, fit = _fastest(keras_settings(model), start, lambda fit: fit.window, probe_seconds,
                            name, log)
    return bench.Workload(len(images), None, None, fit.close, fit.window, name(setting))


def _fastest(settings, start, window_of, probe_seconds, name, log=None):
    """(setting, started) of the setting whose second probe window of probe_seconds ran the
    most steps per second; the others are closed. A setting whose start fails is reported and
    left out; if all fail, the last error is raised."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    rates, started, error = {}, {}, None
    for setting in settings:
        try:
            started[setting] = start(*setting)
            window = window_of(started[setting])
            window(probe_seconds)  # its first steps
            steps, elapsed = window(probe_seconds)
            rates[setting] = steps / elapsed
            log('probe %s: %.2f steps/s' % (name(setting), rates[setting]))
        except Exception as e:  # noqa: BLE001 (a setting this machine cannot run)
            error = e
            log('probe %s: failed, left out: %s' % (name(setting),
                                                   str(e).strip().splitlines()[-1:]))
            if setting in started:
                started.pop(setting).close()
    if not rates:
        raise error
    best = max(rates, key=rates.get)
    for setting, s in started.items():
        if setting != best:
            s.close()
    return best, started[best]


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


CONV_MODELS = ('cnn_mnist', 'deep_cnn', 'cifar10')


class _TorchRun(object):
    """A PyTorch training step of `model` in one setting: layout 'nchw' or 'channels_last',
    compiled with torch.compile or not."""

    def __init__(self, model, batch, layout, compiled):
        import torch
        net, self._optimizer, self._after_step = torch_model(model)
        net.train()
        images, self._labels = (torch.from_numpy(a) for a in _batch(model, batch))
        if model == 'cifar10':
            images = images.permute(0, 3, 1, 2).contiguous()  # NHWC -> PyTorch's NCHW
        if layout == 'channels_last':
            net = net.to(memory_format=torch.channels_last)
            if images.dim() == 4:
                images = images.contiguous(memory_format=torch.channels_last)
        self._images = images
        # The optimiser and the moving average hold net's parameters, which compiling shares.
        self._forward = torch.compile(net) if compiled else net
        self._loss = torch.nn.CrossEntropyLoss()

    def step(self):
        self._optimizer.zero_grad()
        loss = self._loss(self._forward(self._images), self._labels)
        loss.backward()
        self._optimizer.step()
        if self._after_step:
            self._after_step()

    def window(self, seconds):
        return bench.timed(self.step, seconds)

    def close(self):
        pass


def torch_workload(model, batch, probe_seconds=1.0, log=None):
    """The fastest of: eager in NCHW, eager channels_last (convolutional models), and
    torch.compile in the faster of those layouts."""
    import torch
    torch.set_num_threads(os.cpu_count())

    def name(setting):
        return '%s, %s' % ('torch.compile' if setting[1] else 'eager', setting[0])
    layouts = [('nchw', False)] + ([('channels_last', False)] if model in CONV_MODELS else [])
    eager, run = _fastest(layouts, lambda *s: _TorchRun(model, batch, *s),
                          lambda r: r.window, probe_seconds, name, log)
    best, run = _fastest([eager, (eager[0], True)],
                         lambda *s: run if s == eager else _TorchRun(model, batch, *s),
                         lambda r: r.window, probe_seconds, name, log)
    return bench.Workload(batch, run.step, None, run.close, None, name(best))


def build(model, variant, batch=None, probe_seconds=1.0):
    """The Workload of `model` in `variant`, 'keras' or 'pytorch', on batches of `batch`
    (default: the script's, bench.batch_size, which imports TensorFlow), in the setting that
    was fastest over probe_seconds."""
    batch = batch or bench.batch_size(model)
    if variant == 'keras':
        return keras_workload(model, batch, probe_seconds)
    return torch_workload(model, batch, probe_seconds)
