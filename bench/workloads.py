"""What the benchmark times: one training step of a model, built each way.

A Workload is (examples per step, a step function, FLOPs per step, a close function). The
ways, for each model:
  ours      our script's training loop body, as the script runs it: its input pipeline (the
            CIFAR-10 queues, or the MNIST batches fed from NumPy), its session and hooks,
            summaries and checkpoints on the script's schedule, with the script's defaults.
            Test-set evaluations are not training and are left out.
  bf16      ours with --precision=bf16 (TensorFlow's mixed-precision rewrite: oneDNN bfloat16
            on a CPU).
  ours_loop ours with --steps_per_run=10 (the opt-in in-graph loop: ten steps per
            Session.run, as Keras' steps_per_execution=10), for the scripts that have it
            (LOOP_MODELS).
  ours_fed  the same model and train op, on one batch held in variables in memory, nothing
            else run: the ceiling for `ours`.
  keras / pytorch   the same model, batch and optimiser in the peer frameworks (bench/peers.py).
  queue / dataset   (CIFAR-10 only) the input pipeline alone, dequeuing batches as fast as it can.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from bench import LOOP_MODELS, LOOP_STEPS, MODELS, Workload  # noqa: F401 (re-exported)
from bench import flops
from common import data


def _defaults(script_defaults, dataset, **changes):
    """A script's default Config (script_defaults) with `changes`, reading `dataset` ('mnist'
    or 'cifar10') where the script would without --data_dir ($TF_CLASSICS_DATA/<dataset> when
    set)."""
    return dataclasses.replace(
        script_defaults, data_dir=data.resolve_data_dir(dataset, script_defaults.data_dir, False),
        **changes)


def _session_config(config):
    """The session config a script gives its session for config.precision."""
    from common import training
    return training.set_precision(tf.compat.v1.ConfigProto(), config.precision)


def _memory_batch(array, name):
    """A non-trainable variable holding `array`, and the feed that initialises it."""
    feed = tf.compat.v1.placeholder(array.dtype, array.shape)
    var = tf.compat.v1.Variable(feed, trainable=False, name=name)
    return var, {feed: array}


def _mnist_batch(data_dir, batch_size, labels_dtype=np.int32):
    """The first batch_size MNIST training images (scaled, [B, 784]) and labels."""
    from mnist import input_data
    mnist = input_data.read_data_sets(data_dir)
    return mnist.train.images[:batch_size], mnist.train.labels[:batch_size].astype(labels_dtype)


def _fed(build_model, images, labels, config=None, examples=None):
    """ours_fed: build_model((images_var, labels_var)) -> (train_op, feed of the scalar
    placeholders such as the dropout keep probability, or None); runs train_op alone (and
    the queue runners the graph has: CIFAR-10's prefetch queue). examples: per step
    (default: the batch's)."""
    images_var, feed_images = _memory_batch(images, 'bench_images')
    labels_var, feed_labels = _memory_batch(labels, 'bench_labels')
    train_op, feed = build_model((images_var, labels_var))
    sess = tf.compat.v1.Session(config=config)
    sess.run(tf.compat.v1.global_variables_initializer(), {**feed_images, **feed_labels})
    coord = tf.compat.v1.train.Coordinator()
    threads = tf.compat.v1.train.start_queue_runners(sess, coord)

    def close():
        coord.request_stop()
        sess.close()  # cancels a queue runner blocked on a full queue
        coord.join(threads, stop_grace_period_secs=5, ignore_live_threads=True)
    return Workload(examples or len(images), lambda: sess.run(train_op, feed),
                    flops.step_flops(train_op), close)


def _entered(session):
    """Enters a MonitoredSession (or a context manager yielding one, as
    train_lib.monitored_session); returns (the session entered, close)."""
    entered = session.__enter__()
    return entered, lambda: session.__exit__(None, None, None)


# --- cnn_mnist -------------------------------------------------------------------------------

def cnn_mnist(variant, workdir, precision):
    from mnist import cnn_mnist as script
    from mnist import input_data
    config = _defaults(script.DEFAULTS, 'mnist', model_dir=workdir, precision=precision)
    if variant == 'ours_fed':
        return _fed(lambda inputs: (script.Model(config.learning_rate, inputs).train_op, None),
                    *_mnist_batch(config.data_dir, config.batch_size))
    mnist = input_data.read_data_sets(config.data_dir, validation_size=script.VALIDATION_SIZE)
    model = script.Model(config.learning_rate)
    sess, close = _entered(script.training_session(config, model, _session_config(config)))
    batches = script.train_input(config, mnist)
    return Workload(config.batch_size,
                    lambda: script.train_step(sess, model, batches, config.batch_size), None,
                    close)


# --- mnist_with_summaries --------------------------------------------------------------------

def mnist_with_summaries(variant, workdir, precision):
    from mnist import input_data
    from mnist import mnist_with_summaries as script
    config = _defaults(script.DEFAULTS, 'mnist', log_dir=workdir, precision=precision)
    if variant == 'ours_fed':
        def build(inputs):
            model = script.Model(config.learning_rate, inputs)
            return model.train_step, {model.keep_prob: config.dropout}
        return _fed(build, *_mnist_batch(config.data_dir, script.BATCH_SIZE, np.int64))
    mnist = input_data.read_data_sets(config.data_dir, validation_size=script.VALIDATION_SIZE)
    model = script.Model(config.learning_rate)
    sess = tf.compat.v1.Session(config=_session_config(config))
    writer = tf.compat.v1.summary.FileWriter(config.log_dir + '/train', sess.graph)
    sess.run(tf.compat.v1.global_variables_initializer())
    counter = [0]

    def step():
        i = counter[0] = counter[0] + 1
        if i % config.test_every == 0:  # the script evaluates the test set instead of training
            i = counter[0] = i + 1
        xs, ys = mnist.train.next_batch(script.BATCH_SIZE)
        script.train_step(sess, model, writer, i, {model.x: xs, model.y_: ys,
                                                    model.keep_prob: config.dropout})

    def close():
        writer.close()
        sess.close()
    return Workload(script.BATCH_SIZE, step, None, close)


# --- deep_cnn --------------------------------------------------------------------------------

def deep_cnn(variant, workdir, precision):
    from mnist import deep_cnn as script
    from mnist import input_data
    config = _defaults(script.DEFAULTS, 'mnist', log_dir=workdir, precision=precision)
    if variant == 'ours_fed':
        def build(inputs):
            model = script.Model(inputs, config.max_learning_rate, config.min_learning_rate,
                                 config.decay_speed)
            return model.train_op, {model.pkeep: 0.75}
        return _fed(build, *_mnist_batch(config.data_dir, config.batch_size))
    mnist = input_data.read_data_sets(config.data_dir, validation_size=script.VALIDATION_SIZE)
    steps = LOOP_STEPS if variant == 'ours_loop' else 1
    model = script.Model(None, config.max_learning_rate, config.min_learning_rate,
                         config.decay_speed, steps)
    sess = tf.compat.v1.Session(config=_session_config(config))
    sess.run(tf.compat.v1.global_variables_initializer())

    def step():
        script.train_steps(sess, model, [mnist.train.next_batch(config.batch_size)
                                         for _ in range(steps)])
    return Workload(config.batch_size * steps, step, None, sess.close)


# --- the full-batch MLP ----------------------------------------------------------------------

def mlp(variant, workdir, precision):
    from mnist import input_data
    from mnist import mlp as script
    del workdir
    config = _defaults(script.DEFAULTS, 'mnist', precision=precision)
    mnist = input_data.read_data_sets(config.data_dir, scale=False,
                                      validation_size=script.VALIDATION_SIZE)
    graph = script.Graph(mnist.train.images.astype(np.float32), mnist.train.labels,
                         mnist.test.images.astype(np.float32), config.hidden_size,
                         config.learning_rate)
    sess = tf.compat.v1.Session(config=_session_config(config))
    graph.initialize(sess)
    n = len(mnist.train.labels)
    if variant == 'ours_fed':
        return Workload(n, lambda: sess.run(graph.optimizer), flops.step_flops(graph.optimizer),
                        sess.close)
    return Workload(n, lambda: graph.train_step(sess), None, sess.close)


# --- CIFAR-10 --------------------------------------------------------------------------------

def cifar10(variant, workdir, precision):
    from cifar10 import inputs
    from cifar10 import multi_gpu_train
    from cifar10 import train_lib
    config = _defaults(train_lib.DEFAULTS, 'cifar10', train_dir=workdir, precision=precision)
    devices, session_config = train_lib.tower_session_config(config)
    examples = config.batch_size * config.num_gpus
    if variant == 'ours_fed':  # one batch in memory, through the prefetch queue to the towers
        rng = np.random.RandomState(0)
        images = rng.standard_normal([config.batch_size, 24, 24, 3]).astype(np.float32)
        labels = rng.randint(0, 10, config.batch_size).astype(np.int32)

        def build(inputs_):
            tf.compat.v1.train.get_or_create_global_step()
            train_op, _, _ = multi_gpu_train.training_graph(config, inputs_[0], inputs_[1],
                                                            devices)
            return train_op, None
        return _fed(build, images, labels, session_config, examples)
    batches_dir = data.maybe_download_and_extract_cifar10(config.data_dir)
    if variant == 'ours':
        train_op, losses, summary_op = multi_gpu_train.training_graph_from_files(
            config, batches_dir, devices)
        sess, close = _entered(train_lib.monitored_session(
            config, session_config, [train_lib.step_logger(config, losses)], summary_op))
        return Workload(examples, lambda: sess.run(train_op), None, close)
    # The input pipeline alone, as --input_pipeline=queue|dataset builds it.
    images, labels = inputs.training_batches(batches_dir, config.batch_size,
                                             config.min_fraction_of_examples_in_queue, variant)
    batch = tf.group(images, labels)
    sess, close = _entered(tf.compat.v1.train.MonitoredSession())
    return Workload(config.batch_size, lambda: sess.run(batch), None, close)


BUILDERS = {'cnn_mnist': cnn_mnist, 'mnist_with_summaries': mnist_with_summaries,
            'deep_cnn': deep_cnn, 'cifar10': cifar10, 'mlp': mlp}


def build(model, variant, workdir):
    """The Workload of `model` built `variant`-wise (ours, bf16 (ours with --precision=bf16),
    ours_loop (ours with --steps_per_run=10, LOOP_MODELS only), ours_fed, queue or dataset;
    Keras and PyTorch: bench/peers.py), writing its checkpoints and event files under
    workdir. It is built in the default graph: call this inside a
    `with tf.Graph().as_default()` that lasts as long as the Workload is used."""
    if variant == 'bf16':  # ours, with --precision=bf16
        return BUILDERS[model]('ours', workdir, 'bf16')
    return BUILDERS[model](variant, workdir, 'fp32')
