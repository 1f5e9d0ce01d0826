"""Using a trained model (issue 13): cifar10/predict.py and mnist/predict.py on real test
images written out as files, the SavedModel they export (tf.saved_model.load and
saved_model_cli), the moving averages, images of every colour mode, bad input, and the
predictions grid of a quick run_all.sh."""

import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tensorflow as tf

from cifar10 import inputs
from cifar10 import model
from cifar10 import predict as cifar10_predict
from common import data
from common import serving
from helpers import REPO, error_lines, run_script, shared_data_root
from mnist import predict as mnist_predict

LINE = re.compile(r'^(.+): (\S+) (\d\.\d{6}), (\S+) (\d\.\d{6}), (\S+) (\d\.\d{6})$')
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), 'saved_model_cli')
CIFAR10_NAMES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
                 'truck']
N = 4  # test images written out


def _results(stdout):
    """{path: [(class name, probability)] * 3} from predict.py's lines."""
    found = {}
    for line in stdout.splitlines():
        m = LINE.match(line)
        if m:
            g = m.groups()
            found[g[0]] = [(g[1], float(g[2])), (g[3], float(g[4])), (g[5], float(g[6]))]
    return found




def _check_top3(result, all_probabilities, names):
    """result (a predict.py line) is the top 3 of all_probabilities, to 1e-5."""
    order = np.argsort(-all_probabilities)[:3]
    assert [n for n, _ in result] == [names[i] for i in order], (result, all_probabilities)
    np.testing.assert_allclose([p for _, p in result], all_probabilities[order], atol=1e-5)


def _write(path, contents):
    with open(path, 'wb') as f:
        f.write(contents)
    return str(path)


def _png(image):
    return tf.io.encode_png(image).numpy()


def _chunk(kind, payload):
    return (struct.pack('>I', len(payload)) + kind + payload +
            struct.pack('>I', zlib.crc32(kind + payload) & 0xffffffff))


def _palette_png(image):
    """An 8-bit palette PNG (colour type 3) of image (uint8 [h, w, 3], at most 256 colours);
    TensorFlow writes none."""
    colours, index = np.unique(image.reshape(-1, 3), axis=0, return_inverse=True)
    assert len(colours) <= 256
    h, w = image.shape[:2]
    rows = index.reshape(h, w).astype(np.uint8)
    raw = b''.join(b'\x00' + row.tobytes() for row in rows)
    return (b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 3, 0, 0, 0)) +
            _chunk(b'PLTE', colours.astype(np.uint8).tobytes()) +
            _chunk(b'IDAT', zlib.compress(raw)) + _chunk(b'IEND', b''))


def _bmp(image):
    """A 24-bit BMP of image (uint8 [h, w, 3]): bottom-up rows of BGR, padded to 4 bytes."""
    h, w = image.shape[:2]
    row_bytes = (w * 3 + 3) // 4 * 4
    rows = b''.join(image[y, :, ::-1].tobytes().ljust(row_bytes, b'\x00')
                    for y in range(h - 1, -1, -1))
    header = struct.pack('<2sIHHI', b'BM', 54 + len(rows), 0, 0, 54)
    info = struct.pack('<IiiHHIIiiII', 40, w, h, 1, 24, 0, len(rows), 2835, 2835, 0, 0)
    return header + info + rows


def _cifar10_test_images():
    batches = os.path.join(shared_data_root(), 'cifar10', data.CIFAR10_DIRNAME)
    return data.read_cifar10_numpy(data.cifar10_test_files(batches))


def _saved_model_cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
    return subprocess.run([SAVED_MODEL_CLI] + list(args), capture_output=True, text=True,
                          env=env, timeout=300)


def _saved_model_cli_run(version_dir, image_paths, outdir):
    """saved_model_cli run on serving_default with the files' bytes; returns its outputs."""
    npy = os.path.join(str(outdir), 'image_bytes.npy')
    contents = np.empty(len(image_paths), dtype=object)  # pickled: bytes kept exactly
    contents[:] = [open(p, 'rb').read() for p in image_paths]
    np.save(npy, contents, allow_pickle=True)
    out = os.path.join(str(outdir), 'out')
    result = _saved_model_cli('run', '--dir', version_dir, '--tag_set', 'serve',
                              '--signature_def', 'serving_default',
                              '--inputs', 'image_bytes=' + npy, '--outdir', out)
    assert result.returncode == 0, result.stderr[-3000:]
    return {name[:-4]: np.load(os.path.join(out, name), allow_pickle=True)
            for name in os.listdir(out)}


# ---------------------------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def cifar10_run(tmp_path_factory, tiny_cifar10_checkpoint):
    """A 3-step CIFAR-10 checkpoint (conftest's), the first N test images as PNG and JPEG
    files, and predict.py run on them with --export_dir."""
    root = tmp_path_factory.mktemp('cifar10_predict')
    train_dir = tiny_cifar10_checkpoint
    images, labels = _cifar10_test_images()
    pngs = [_write(root / ('test%d.png' % i), _png(images[i])) for i in range(N)]
    jpegs = [_write(root / ('test%d.jpg' % i), tf.io.encode_jpeg(images[i]).numpy())
             for i in range(N)]
    export_dir = str(root / 'export')
    predicted = run_script('cifar10/predict.py', '--checkpoint_dir=' + train_dir,
                           '--export_dir=' + export_dir, *(pngs + jpegs))
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    return dict(root=root, train_dir=train_dir, images=images[:N], pngs=pngs, jpegs=jpegs,
                export_dir=export_dir, predicted=predicted, results=_results(predicted.stdout))


def _evaluator_probabilities(ckpt_path, n=N):
    """Softmax of the model on the first n test records through the evaluator's own input
    (inputs.inputs) and its restore (the moving averages)."""
    batches = os.path.join(shared_data_root(), 'cifar10', data.CIFAR10_DIRNAME)
    with tf.Graph().as_default():
        images, _ = inputs.inputs(data.cifar10_test_files(batches), n, n)
        probabilities = tf.nn.softmax(model.inference(images))
        saver = tf.compat.v1.train.Saver(model.variables_to_restore())
        with tf.compat.v1.Session() as sess:
            saver.restore(sess, ckpt_path)
            coord = tf.compat.v1.train.Coordinator()
            threads = tf.compat.v1.train.start_queue_runners(sess, coord)
            out = sess.run(probabilities)
            coord.request_stop()
            coord.join(threads)
    return out


def test_cifar10_predict_classifies_test_images_as_the_evaluator_does(cifar10_run):
    r = cifar10_run
    stdout = r['predicted'].stdout
    ckpt = os.path.join(r['train_dir'], 'model.ckpt-3')
    assert ('Classifying with %s (global step 3): the moving averages of the weights' % ckpt
            in stdout)
    assert re.search(r"^Model flags from the trainer's .+/flags-\d{8}-\d{6}\.json: "
                     r"--conv21=False --use_fp16=False$", stdout, re.M)
    expected = _evaluator_probabilities(ckpt)
    assert set(r['results']) == set(r['pngs'] + r['jpegs'])
    for i, png in enumerate(r['pngs']):  # lossless: exactly the evaluator's input
        _check_top3(r['results'][png], expected[i], CIFAR10_NAMES)
    for i, jpeg in enumerate(r['jpegs']):  # lossy: close
        result = r['results'][jpeg]
        assert all(name in CIFAR10_NAMES for name, _ in result)
        probabilities = [p for _, p in result]
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1
        np.testing.assert_allclose(probabilities, np.sort(expected[i])[::-1][:3], atol=0.05)


def test_cifar10_saved_model_layout_and_signatures(cifar10_run):
    r = cifar10_run
    assert os.listdir(r['export_dir']) == ['3']  # <global step>, no staging folder left
    version = os.path.join(r['export_dir'], '3')
    assert 'Exported a SavedModel to %s (signatures serving_default, predict_images)' % version \
        in r['predicted'].stdout
    assert sorted(os.listdir(version)) == ['saved_model.pb', 'variables']
    shown = _saved_model_cli('show', '--all', '--dir', version)
    assert shown.returncode == 0, shown.stderr[-3000:]
    text = shown.stdout
    assert "signature_def['serving_default']" in text and "signature_def['predict_images']" in text
    assert re.search(r"inputs\['image_bytes'\] tensor_info:\s+dtype: DT_STRING\s+shape: \(-1\)",
                     text)
    assert re.search(r"inputs\['images'\] tensor_info:\s+dtype: DT_UINT8\s+"
                     r"shape: \(-1, -1, -1, 3\)", text)
    for output, dtype, shape in [('classes', 'DT_INT32', r'\(-1, 3\)'),
                                 ('class_names', 'DT_STRING', r'\(-1, 3\)'),
                                 ('probabilities', 'DT_FLOAT', r'\(-1, 3\)'),
                                 ('all_probabilities', 'DT_FLOAT', r'\(-1, 10\)')]:
        assert len(re.findall(r"outputs\['%s'\] tensor_info:\s+dtype: %s\s+shape: %s"
                              % (output, dtype, shape), text)) == 2, output


def test_cifar10_saved_model_agrees_with_predict(cifar10_run, tmp_path):
    """tf.saved_model.load and saved_model_cli run give predict.py's probabilities."""
    r = cifar10_run
    version = os.path.join(r['export_dir'], '3')
    files = r['pngs'] + r['jpegs']
    loaded = tf.saved_model.load(version)
    out = loaded.signatures['serving_default'](
        image_bytes=tf.constant([open(p, 'rb').read() for p in files]))
    for path, probabilities, classes, names in zip(files, out['all_probabilities'].numpy(),
                                                   out['classes'].numpy(),
                                                   out['class_names'].numpy()):
        _check_top3(r['results'][path], probabilities, CIFAR10_NAMES)
        assert [CIFAR10_NAMES[c] for c in classes] == [n.decode() for n in names]
    # the uint8 signature on the same pixels as the PNG files
    out = loaded.signatures['predict_images'](images=tf.constant(r['images']))
    for path, probabilities in zip(r['pngs'], out['all_probabilities'].numpy()):
        _check_top3(r['results'][path], probabilities, CIFAR10_NAMES)

    cli = _saved_model_cli_run(version, files, tmp_path)
    for i, path in enumerate(files):
        _check_top3(r['results'][path], cli['all_probabilities'][i], CIFAR10_NAMES)
        np.testing.assert_allclose(cli['probabilities'][i], [p for _, p in r['results'][path]],
                                   atol=1e-5)
        assert [n.decode() for n in cli['class_names'][i]] == [n for n, _ in r['results'][path]]


def _rewrite_checkpoint(src, dest, change):
    """Writes the checkpoint src again at dest (a path prefix), each variable's value passed
    through change(name, value)."""
    reader = tf.train.load_checkpoint(src)
    with tf.Graph().as_default():
        variables = {name: tf.compat.v1.Variable(change(name, reader.get_tensor(name)),
                                                 name='v%d' % i)
                     for i, name in enumerate(sorted(reader.get_variable_to_shape_map()))}
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, dest)


def test_cifar10_predict_uses_the_moving_averages(cifar10_run, tmp_path):
    """New values for the raw weights change nothing; new values for their moving averages
    change the prediction."""
    r = cifar10_run
    src = os.path.join(r['train_dir'], 'model.ckpt-3')
    with tf.Graph().as_default():
        model.inference(tf.zeros([1, 24, 24, 3]))
        weights = {v.op.name for v in tf.compat.v1.trainable_variables()}
    rng = np.random.RandomState(0)

    def raw_changed(name, value):
        return rng.normal(0, 1, value.shape).astype(value.dtype) if name in weights else value

    def averages_changed(name, value):
        if name.endswith('/ExponentialMovingAverage') and name.rsplit('/', 1)[0] in weights:
            return rng.normal(0, 1, value.shape).astype(value.dtype)
        return value

    runs = {}
    for case, change in [('raw', raw_changed), ('averages', averages_changed)]:
        dest = str(tmp_path / case / 'model.ckpt-3')
        _rewrite_checkpoint(src, dest, change)
        changed = 'conv1/weights' + ('' if case == 'raw' else '/ExponentialMovingAverage')
        assert not np.array_equal(tf.train.load_variable(dest, changed),
                                  tf.train.load_variable(src, changed))
        result = run_script('cifar10/predict.py', '--checkpoint=' + dest, *r['pngs'])
        assert result.returncode == 0, result.stderr[-3000:]
        runs[case] = _results(result.stdout)
    for png in r['pngs']:
        assert runs['raw'][png] == r['results'][png]
    assert any(runs['averages'][png] != r['results'][png] for png in r['pngs'])


def test_cifar10_checkpoint_flag_picks_one(cifar10_run, tmp_path):
    r = cifar10_run
    ckpt0 = os.path.join(r['train_dir'], 'model.ckpt-0')
    result = run_script('cifar10/predict.py', '--checkpoint=' + ckpt0,
                        '--export_dir=%s' % tmp_path, *r['pngs'])
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Classifying with %s (global step 0)' % ckpt0 in result.stdout
    assert os.listdir(str(tmp_path)) == ['0']
    # step 0's weights are the initial ones: not the prediction of step 3
    expected = _evaluator_probabilities(ckpt0)
    results = _results(result.stdout)
    for i, png in enumerate(r['pngs']):
        _check_top3(results[png], expected[i], CIFAR10_NAMES)
    assert any(results[png] != r['results'][png] for png in r['pngs'])


def test_cifar10_images_of_any_mode_and_size(cifar10_run, tmp_path):
    """Grayscale, RGBA, palette, 16-bit, BMP, wide and tall: each classified as the RGB image
    it stands for (alpha dropped, grayscale repeated, the centred square kept)."""
    r = cifar10_run
    rng = np.random.RandomState(1)
    image = r['images'][0]
    gray = image[..., :1]
    quantised = (image // 64 * 64 + 32).astype(np.uint8)  # 64 colours: a palette holds them
    wide = np.concatenate([rng.randint(0, 256, (32, 10, 3)), image,
                           rng.randint(0, 256, (32, 11, 3))], axis=1).astype(np.uint8)
    tall = np.concatenate([rng.randint(0, 256, (7, 32, 3)), image,
                           rng.randint(0, 256, (8, 32, 3))], axis=0).astype(np.uint8)
    alpha = rng.randint(0, 256, (32, 32, 1)).astype(np.uint8)
    big = tf.cast(tf.image.resize(image[np.newaxis], [200, 333]), tf.uint8).numpy()[0]
    files = {  # name: (contents, the file whose prediction it must have)
        'gray.png': (_png(gray), 'gray_rgb.png'),
        'gray_rgb.png': (_png(np.repeat(gray, 3, axis=2)), None),
        'rgba.png': (_png(np.concatenate([image, alpha], axis=2)), 'rgb.png'),
        'rgb.png': (_png(image), None),
        'palette.png': (_palette_png(quantised), 'quantised.png'),
        'quantised.png': (_png(quantised), None),
        'sixteen.png': (_png(image.astype(np.uint16) * 257), 'rgb.png'),
        'image.bmp': (_bmp(image), 'rgb.png'),
        'wide.png': (_png(wide), 'rgb.png'),
        'tall.png': (_png(tall), 'rgb.png'),
        'big.jpg': (tf.io.encode_jpeg(big).numpy(), None),
    }
    paths = {name: _write(tmp_path / name, contents) for name, (contents, _) in files.items()}
    result = run_script('cifar10/predict.py', '--checkpoint_dir=' + r['train_dir'],
                        *paths.values())
    assert result.returncode == 0, result.stderr[-3000:]
    results = _results(result.stdout)
    assert set(results) == set(paths.values())
    assert results[paths['rgb.png']] == r['results'][r['pngs'][0]]
    for name, (_, same_as) in files.items():
        if same_as:
            assert results[paths[name]] == results[paths[same_as]], name


def test_prepare_images_keeps_the_centred_square():
    rng = np.random.RandomState(2)
    image = rng.randint(0, 256, (1, 40, 70, 3)).astype(np.uint8)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        wide, square = sess.run([cifar10_predict.prepare_images(tf.constant(image)),
                                 cifar10_predict.prepare_images(tf.constant(image[:, :, 15:55]))])
    assert wide.shape == (1, 24, 24, 3)
    np.testing.assert_array_equal(wide, square)


def test_cifar10_bad_files_fail_alone(cifar10_run, tmp_path):
    r = cifar10_run
    text = _write(tmp_path / 'notes.txt', b'not an image at all\n')
    truncated = _write(tmp_path / 'truncated.png', _png(r['images'][0])[:60])
    missing = str(tmp_path / 'missing.png')
    folder = str(tmp_path)
    result = run_script('cifar10/predict.py', '--checkpoint_dir=' + r['train_dir'], text,
                        r['pngs'][0], truncated, missing, folder, r['pngs'][1])
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    results = _results(result.stdout)
    assert results == {p: r['results'][p] for p in r['pngs'][:2]}  # the others still classified
    errors = error_lines(result.stderr)
    assert len(errors) == 4, result.stderr[-3000:]
    expected = 'expected a PNG, JPEG, BMP, GIF or WebP image'
    assert errors[0].startswith('error: %s: not an image TensorFlow can decode (Unknown image '
                                'file format' % text) and errors[0].endswith(expected)
    assert errors[1].startswith('error: %s: not an image' % truncated)
    assert errors[2] == 'error: %s: cannot be read (No such file or directory); %s' % (
        missing, expected)
    assert errors[3] == 'error: %s: cannot be read (Is a directory); %s' % (folder, expected)


def test_cifar10_no_checkpoint_or_another_models(cifar10_run, mnist_runs, tmp_path):
    png = cifar10_run['pngs'][0]
    cases = [
        (['--checkpoint_dir=%s' % tmp_path],
         r'^error: no checkpoint in --checkpoint_dir=%s \(expected the model\.ckpt-N files of '
         r'cifar10/train\.py or cifar10/multi_gpu_train\.py\)$' % re.escape(str(tmp_path))),
        (['--checkpoint=%s/model.ckpt-5' % tmp_path],
         r'^error: --checkpoint=%s/model\.ckpt-5: no such checkpoint' % re.escape(str(tmp_path))),
        (['--checkpoint_dir=' + mnist_runs['cnn_mnist.py']],
         r'^error: the checkpoint %s/model\.ckpt-3 does not match the CIFAR-10 model '
         r'\(--conv21=False --use_fp16=False\) \(.+ is not in it\); expected a checkpoint of '
         r'cifar10/train\.py or cifar10/multi_gpu_train\.py$'
         % re.escape(mnist_runs['cnn_mnist.py'])),
        (['--checkpoint_dir=' + cifar10_run['train_dir'], '--conv21'],
         r'^error: --conv21=True, but the checkpoints in --checkpoint_dir=%s were trained with '
         r'--conv21=False \(flags-\d{8}-\d{6}\.json\)$' % re.escape(cifar10_run['train_dir'])),
    ]
    for args, pattern in cases:
        result = run_script('cifar10/predict.py', *(args + [png]))
        assert result.returncode == 1 and 'Traceback' not in result.stderr, args
        (line,) = error_lines(result.stderr)
        assert re.match(pattern, line), line
        assert not _results(result.stdout)


def test_cifar10_export_never_overwrites_a_version(cifar10_run):
    r = cifar10_run
    version = os.path.join(r['export_dir'], '3')
    before = os.path.getmtime(os.path.join(version, 'saved_model.pb'))
    result = run_script('cifar10/predict.py', '--checkpoint_dir=' + r['train_dir'],
                        '--export_dir=' + r['export_dir'])
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert error_lines(result.stderr) == [
        'error: %s already exists (TensorFlow Serving never reloads a version: remove it, or '
        'give another --export_dir)' % version]
    assert os.listdir(r['export_dir']) == ['3']
    assert os.path.getmtime(os.path.join(version, 'saved_model.pb')) == before


def test_cifar10_refused_export_still_draws_the_grid(cifar10_run, tmp_path):
    r = cifar10_run
    grid = str(tmp_path / 'grid.png')
    result = run_script('cifar10/predict.py', '--checkpoint_dir=' + r['train_dir'],
                        '--export_dir=' + r['export_dir'], '--sample_grid=' + grid, r['pngs'][0])
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert list(_results(result.stdout)) == [r['pngs'][0]]
    assert re.search(r'^Wrote %s \(\d+ of the first 16 test images right\)$' % re.escape(grid),
                     result.stdout, re.M)
    assert os.path.getsize(grid) > 0
    assert result.stderr.strip().splitlines()[-1] == (
        'error: %s already exists (TensorFlow Serving never reloads a version: remove it, or '
        'give another --export_dir)' % os.path.join(r['export_dir'], '3'))


def test_quick_run_draws_the_predictions_grid(tmp_path):
    matplotlib_image = pytest.importorskip('matplotlib.image')
    env = dict(os.environ, TF_CLASSICS_DATA=shared_data_root())
    result = subprocess.run([sys.executable, '-m', 'tools.report', '--quick', '--only',
                             'cifar10', '--out', str(tmp_path)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    quick = tmp_path / 'quick'  # where --quick runs go
    grid = quick / 'cifar10_predictions.png'
    assert (quick / 'cifar10.png').exists() and grid.exists()
    image = matplotlib_image.imread(str(grid))
    assert image.shape[0] > 500 and image.shape[1] > 500
    rgb = image[..., :3]
    red = (rgb[..., 0] > 0.8) & (rgb[..., 1] < 0.2) & (rgb[..., 2] < 0.2)  # wrong ones
    green = (rgb[..., 0] < 0.2) & (rgb[..., 1] > 0.4) & (rgb[..., 2] < 0.2)  # right ones
    assert red.sum() + green.sum() > 500
    log = (quick / 'cifar10' / 'log.txt').read_text()
    assert re.search(r'^Wrote %s \((\d+) of the first 16 test images right\)$'
                     % re.escape(str(grid)), log, re.M)
    assert '--sample_grid=%s' % grid in log


# ---------------------------------------------------------------------------------------------
# MNIST
# ---------------------------------------------------------------------------------------------

MNIST_TRAIN = {
    'cnn_mnist.py': lambda d: ['mnist/cnn_mnist.py', '--train_steps=3', '--model_dir=' + d],
    'deep_cnn.py': lambda d: ['mnist/deep_cnn.py', '--max_steps=3', '--eval_every=3',
                              '--log_dir=' + d],
    'mnist_with_summaries.py': lambda d: ['mnist/mnist_with_summaries.py', '--max_steps=3',
                                          '--log_dir=' + d],
}


@pytest.fixture(scope='module')
def mnist_runs(tmp_path_factory, data_root):
    """A 3-step checkpoint of each MNIST script that keeps checkpoints, by script."""
    root = tmp_path_factory.mktemp('mnist_predict')
    runs = {}
    for script, command in MNIST_TRAIN.items():
        folder = str(root / script.split('.')[0])
        result = run_script(*command(folder))
        assert result.returncode == 0, result.stderr[-3000:]
        assert os.path.exists(os.path.join(folder, 'model.ckpt-3.index'))
        runs[script] = folder
    return runs


@pytest.fixture(scope='module')
def mnist_files(tmp_path_factory):
    """The first N MNIST test images as grayscale PNG, JPEG and dark-on-light RGB PNG files."""
    root = tmp_path_factory.mktemp('mnist_files')
    mnist = data.load_mnist(os.path.join(shared_data_root(), 'mnist'), verify_checksum=False)
    images = mnist.test_images[:N, :, :, np.newaxis]
    return dict(
        images=images,
        pngs=[_write(root / ('digit%d.png' % i), _png(images[i])) for i in range(N)],
        jpegs=[_write(root / ('digit%d.jpg' % i), tf.io.encode_jpeg(images[i]).numpy())
               for i in range(N)],
        inverted=[_write(root / ('drawn%d.png' % i), _png(np.repeat(255 - images[i], 3, axis=2)))
                  for i in range(N)])


def _mnist_probabilities(script, ckpt_path, images):
    """Softmax of the script's network on images (uint8 [n, 28, 28, 1]) fed as the scripts
    feed MNIST (float32 [n, 784] / 255)."""
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 784])
        probabilities = tf.nn.softmax(mnist_predict.MODELS[script](x))
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            saver.restore(sess, ckpt_path)
            return sess.run(probabilities, {x: images.reshape(-1, 784) / 255.0})


DIGITS = [str(d) for d in range(10)]


@pytest.mark.parametrize('script', ['cnn_mnist.py', 'deep_cnn.py', 'mnist_with_summaries.py'])
def test_mnist_predict_and_its_saved_model(script, mnist_runs, mnist_files, tmp_path):
    folder = mnist_runs[script]
    f = mnist_files
    export_dir = str(tmp_path / 'export')
    result = run_script('mnist/predict.py', '--model_dir=' + folder, '--export_dir=' + export_dir,
                        *(f['pngs'] + f['jpegs']))
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = os.path.join(folder, 'model.ckpt-3')
    assert re.search(r'^Classifying with %s \(global step 3\): the model of %s \(from %s/'
                     r'flags-\d{8}-\d{6}\.json\)$' % (re.escape(ckpt), re.escape(script),
                                                      re.escape(folder)), result.stdout, re.M)
    results = _results(result.stdout)
    expected = _mnist_probabilities(script, ckpt, f['images'])
    for i, png in enumerate(f['pngs']):  # exactly what the script's evaluation feeds
        _check_top3(results[png], expected[i], DIGITS)
    for jpeg in f['jpegs']:
        assert len(results[jpeg]) == 3 and all(d in DIGITS for d, _ in results[jpeg])

    # dark digits on a light background, RGB: the same with --invert
    inverted = run_script('mnist/predict.py', '--model_dir=' + folder, '--invert',
                          *f['inverted'])
    assert inverted.returncode == 0, inverted.stderr[-3000:]
    inverted_results = _results(inverted.stdout)
    for png, drawn in zip(f['pngs'], f['inverted']):
        assert inverted_results[drawn] == results[png]

    version = os.path.join(export_dir, '3')
    assert os.listdir(export_dir) == ['3']
    loaded = tf.saved_model.load(version)
    files = f['pngs'] + f['jpegs']
    out = loaded.signatures['serving_default'](
        image_bytes=tf.constant([open(p, 'rb').read() for p in files]))
    for path, probabilities in zip(files, out['all_probabilities'].numpy()):
        _check_top3(results[path], probabilities, DIGITS)
    out = loaded.signatures['predict_images'](images=tf.constant(f['images']))
    for path, probabilities in zip(f['pngs'], out['all_probabilities'].numpy()):
        _check_top3(results[path], probabilities, DIGITS)
    if script != 'mnist_with_summaries.py':
        cli = _saved_model_cli_run(version, files, tmp_path)
        for i, path in enumerate(files):
            _check_top3(results[path], cli['all_probabilities'][i], DIGITS)


# Digits drawn here, as strokes through points on MNIST's 28x28 grid (x, y), each inside the
# centre 20x20 as MNIST's are.
STROKES = {
    '0': [[(14 + 5.5 * np.sin(t), 14 - 8 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 40)]],
    '1': [[(14.5, 5), (13.5, 23)]],
    '4': [[(17, 23), (17, 5), (8, 17), (21, 17)]],
    '7': [[(8, 6), (20, 6), (12, 23)]],
}


def _drawn_digit(digit, scale=3, width=1.4):
    """A white digit on black, uint8 [28 * scale, 28 * scale]: pixels within `width` (in
    28-grid pixels) of the digit's strokes, their edges antialiased."""
    side = 28 * scale
    yy, xx = (np.mgrid[0:side, 0:side] + 0.5) / scale
    distance = np.full((side, side), np.inf)
    for points in STROKES[digit]:
        for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
            dx, dy = x1 - x0, y1 - y0
            t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy), 0, 1)
            distance = np.minimum(distance, np.hypot(xx - x0 - t * dx, yy - y0 - t * dy))
    return np.clip((width + 0.5 - distance) * 255, 0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def reading_model(tmp_path_factory, data_root):
    """deep_cnn after 300 batches (about 0.97 on the test set): enough to read drawn digits."""
    folder = str(tmp_path_factory.mktemp('mnist_reader') / 'deep_cnn')
    result = run_script('mnist/deep_cnn.py', '--max_steps=300', '--eval_every=300', '--seed=0',
                        '--log_dir=' + folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.fixture(scope='module')
def drawn_files(tmp_path_factory):
    """Each drawn digit as a white-on-black grayscale PNG and a black-on-white RGB PNG (as
    people draw them), 84x84."""
    root = tmp_path_factory.mktemp('drawn')
    white, black = [], []
    for digit in STROKES:
        image = _drawn_digit(digit)[:, :, np.newaxis]
        white.append(_write(root / ('white_on_black_%s.png' % digit), _png(image)))
        black.append(_write(root / ('black_on_white_%s.png' % digit),
                            _png(np.repeat(255 - image, 3, axis=2))))
    return white, black


def _inverted_notes(stdout):
    return [line.split(': ')[0] for line in stdout.splitlines()
            if line.endswith(": a light background: inverted to MNIST's white digit on black "
                             "(--noinvert: as it is)")]


def test_drawn_digits_of_either_polarity_are_read_right(reading_model, drawn_files, tmp_path):
    white, black = drawn_files
    export_dir = str(tmp_path / 'export')
    result = run_script('mnist/predict.py', '--model_dir=' + reading_model,
                        '--export_dir=' + export_dir, *(white + black))
    assert result.returncode == 0, result.stderr[-3000:]
    results = _results(result.stdout)
    for digit, paths in zip(STROKES, zip(white, black)):
        for path in paths:
            assert results[path][0][0] == digit, (path, results[path])
    assert _inverted_notes(result.stdout) == black  # one line each, the black-on-white ones

    # --noinvert and --invert force it: the dark digits read as they are, the light inverted
    kept = run_script('mnist/predict.py', '--model_dir=' + reading_model, '--noinvert', *black)
    assert kept.returncode == 0 and _inverted_notes(kept.stdout) == []
    assert ', images never inverted' in kept.stdout.splitlines()[0]
    assert [r[0][0] for r in _results(kept.stdout).values()] != list(STROKES)
    forced = run_script('mnist/predict.py', '--model_dir=' + reading_model, '--invert', *white)
    assert forced.returncode == 0 and _inverted_notes(forced.stdout) == []
    assert [r[0][0] for r in _results(forced.stdout).values()] != list(STROKES)

    # the SavedModel decides the same way, and says which it inverted
    (version,) = os.listdir(export_dir)
    loaded = tf.saved_model.load(os.path.join(export_dir, version))
    files = white + black
    out = loaded.signatures['serving_default'](
        image_bytes=tf.constant([open(p, 'rb').read() for p in files]))
    assert [str(d) for d in out['classes'].numpy()[:, 0]] == list(STROKES) * 2
    assert out['inverted'].numpy().tolist() == [False] * len(white) + [True] * len(black)
    images = np.stack([_drawn_digit(d) for d in STROKES] + [255 - _drawn_digit(d)
                                                             for d in STROKES])
    out = loaded.signatures['predict_images'](images=tf.constant(images[..., np.newaxis]))
    assert [str(d) for d in out['classes'].numpy()[:, 0]] == list(STROKES) * 2
    assert out['inverted'].numpy().tolist() == [False] * len(white) + [True] * len(black)


def test_a_light_border_is_a_dark_digit_on_light():
    dark_on_light = np.full([1, 30, 20, 1], 250, np.uint8)
    dark_on_light[0, 5:25, 5:15] = 0  # a large dark digit inside
    light_on_dark = 255 - dark_on_light
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        found = sess.run(mnist_predict.light_border(
            tf.constant(np.concatenate([dark_on_light, light_on_dark]))))
    assert found.tolist() == [True, False]


def test_mnist_model_found_from_the_variable_names(mnist_runs, mnist_files, tmp_path):
    """Without the flags file beside it, the checkpoint's variables tell the model."""
    for script in ('deep_cnn.py', 'mnist_with_summaries.py'):
        copy = tmp_path / script.split('.')[0]
        copy.mkdir()
        for name in os.listdir(mnist_runs[script]):
            if name.startswith('model.ckpt-3.'):
                shutil.copy(os.path.join(mnist_runs[script], name), str(copy))
        ckpt = str(copy / 'model.ckpt-3')
        result = run_script('mnist/predict.py', '--checkpoint=' + ckpt, mnist_files['pngs'][0])
        assert result.returncode == 0, result.stderr[-3000:]
        assert ('the model of %s (from the checkpoint\'s variable names)' % script
                in result.stdout)
        expected = _mnist_probabilities(script, ckpt, mnist_files['images'][:1])
        _check_top3(_results(result.stdout)[mnist_files['pngs'][0]], expected[0], DIGITS)


def test_prepare_digits_pads_to_a_square():
    """A tall white image: black is added left and right, nothing is cut off."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        out = sess.run(mnist_predict.prepare_digits(tf.fill([1, 56, 28, 1], np.uint8(255))))
    out = out.reshape(28, 28)
    assert np.all(out[:, :6] == 0) and np.all(out[:, 22:] == 0)
    assert np.all(out[:, 8:20] == 1.0)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        out = sess.run(mnist_predict.prepare_digits(tf.fill([1, 28, 28, 1], np.uint8(255)),
                                                    invert=True))
    assert np.all(out == 0)


def test_mnist_bad_input(mnist_runs, mnist_files, cifar10_run, tmp_path):
    text = _write(tmp_path / 'notes.txt', b'seven\n')
    good = mnist_files['pngs'][0]
    result = run_script('mnist/predict.py', '--model_dir=' + mnist_runs['deep_cnn.py'], text,
                        str(tmp_path / 'missing.png'), good)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert list(_results(result.stdout)) == [good]
    errors = error_lines(result.stderr)
    assert len(errors) == 2
    assert errors[0].startswith('error: %s: not an image' % text)
    assert errors[1].startswith('error: %s: cannot be read' % (tmp_path / 'missing.png'))

    cifar_copy = tmp_path / 'cifar_no_flags'
    cifar_copy.mkdir()
    for name in os.listdir(cifar10_run['train_dir']):
        if name.startswith('model.ckpt-3.'):
            shutil.copy(os.path.join(cifar10_run['train_dir'], name), str(cifar_copy))
    empty = tmp_path / 'empty'
    empty.mkdir()
    cases = [
        (['--model_dir=%s' % empty],
         r'^error: no checkpoint in --model_dir=%s \(expected the model\.ckpt-N files of '
         r'cnn_mnist\.py, deep_cnn\.py, mnist_with_summaries\.py\)$' % re.escape(str(empty))),
        (['--model_dir=' + cifar10_run['train_dir']],
         r'^error: the checkpoints in %s were written by train\.py \(flags-\d{8}-\d{6}\.json\); '
         r'expected those of cnn_mnist\.py, deep_cnn\.py, mnist_with_summaries\.py$'
         % re.escape(cifar10_run['train_dir'])),
        (['--checkpoint=%s/model.ckpt-3' % cifar_copy],
         r'^error: the checkpoint %s/model\.ckpt-3 holds none of the models of cnn_mnist\.py, '
         r'deep_cnn\.py, mnist_with_summaries\.py' % re.escape(str(cifar_copy))),
    ]
    for args, pattern in cases:
        result = run_script('mnist/predict.py', *(args + [good]))
        assert result.returncode == 1 and 'Traceback' not in result.stderr, args
        (line,) = error_lines(result.stderr)
        assert re.match(pattern, line), line
        assert not _results(result.stdout)


def test_class_names_come_from_the_data_set(tmp_path):
    path = _write(tmp_path / 'batches.meta.txt', b'a\nb\n\nc\n\n')
    assert serving.read_class_names(path) == ['a', 'b', 'c']
    meta = os.path.join(shared_data_root(), 'cifar10', data.CIFAR10_DIRNAME, 'batches.meta.txt')
    assert serving.read_class_names(meta) == CIFAR10_NAMES


def test_bench_serving_times_both_signatures_at_batch_1_and_128(cifar10_run):
    result = subprocess.run([sys.executable, '-m', 'bench.serving', cifar10_run['export_dir'],
                             '--seconds=0.05', '--rounds=1', '--warmup_seconds=0'], cwd=REPO,
                            capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CLASSICS_DATA=shared_data_root()))
    assert result.returncode == 0, result.stderr[-3000:]
    assert '%s/3: 3-channel 32x32 test images' % cifar10_run['export_dir'] in result.stdout
    rows = re.findall(r'^\| (serving_default|predict_images) \| (PNG bytes|uint8) \| (\d+) \| '
                      r'([\d,]+) \| (\d+\.\d\d) \|$', result.stdout, re.M)
    assert sorted((name, int(batch)) for name, _, batch, _, _ in rows) == [
        ('predict_images', 1), ('predict_images', 128), ('serving_default', 1),
        ('serving_default', 128)]
    assert all(int(rate.replace(',', '')) > 0 for _, _, _, rate, _ in rows)
