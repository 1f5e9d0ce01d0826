"""Our CIFAR-10 model against the original tutorial's code (the tensorflow 0.12.1 wheel's
2016-12 files, fetched through pip on first use, cached, and converted by tools/originals.py):
the same variable values and batch give the same logits, loss and gradients; the same tower
gradients average the same; the same file reads as the same records; the eval preprocessing
gives the same images; the single-device training graph has the same 'losses' collection,
summary tags (as TensorFlow 0.12 made them) and trainable variables, and its distortions make
the same image from the same image and random draws. And the original's own
cifar10_input_test.py, converted, passes against cifar10/inputs.py. Seconds: no training."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from cifar10 import inputs
from cifar10 import model
from cifar10 import multi_gpu_train
from common import data
import graph_facts
from helpers import REPO
from tools import originals

BATCH = 8
RECORDS = 12
# The values of the training distortions' random ops for one image each, in the order the ops
# are made: random_crop's offset (y, x, channel: taken modulo 9, 9, 1), random_flip's uniform
# (below 0.5: flipped), random_brightness's and random_contrast's uniforms in [0, 1).
DRAWS = [[0, 0, 0, 0.9, 0.5, 0.5], [8, 3, 0, 0.1, 0.0, 0.99], [4, 8, 0, 0.49, 0.97, 0.0],
         [13, 25, 7, 0.5, 0.25, 0.75]]
# float32 round-off: the two graphs run the same ops, maybe in another order.
TOLERANCE = dict(rtol=2e-5, atol=2e-6)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('originals'))
    try:
        originals.fetch_and_convert(out)
    except originals.OriginalsError as e:
        pytest.fail('tools.originals: %s' % e)
    return out


def _first_records(path, n):
    with open(path, 'rb') as f:
        return f.read(n * (1 + 32 * 32 * 3))


def _our_side(data_root, workdir):
    """Our model's variables (their initial values, seeded), a real eval batch, tower
    gradients, and what our code computes from them."""
    test_file = os.path.join(data_root, 'cifar10', 'cifar-10-batches-bin', 'test_batch.bin')
    eval_dir = os.path.join(workdir, 'eval_data')
    os.makedirs(eval_dir, exist_ok=True)
    with open(os.path.join(eval_dir, 'test_batch.bin'), 'wb') as f:
        f.write(_first_records(test_file, RECORDS))
    raw = np.frombuffer(_first_records(test_file, RECORDS), np.uint8).reshape(RECORDS, -1)
    labels = raw[:BATCH, 0].astype(np.int32)
    uint8images = raw[:, 1:].reshape(RECORDS, 3, 32, 32).transpose(0, 2, 3, 1)
    ours, given = {}, {}
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(0)
        images = inputs.eval_image(tf.constant(uint8images))
        logits = model.inference(images[:BATCH])
        loss = model.loss(logits, tf.constant(labels))
        variables = tf.compat.v1.trainable_variables()
        grads = tf.gradients(loss, variables)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            values = sess.run([images, logits, loss] + grads + variables)
    n = len(variables)
    ours['eval_images'], ours['logits'], ours['loss'] = values[:3]
    names = [v.op.name for v in variables]
    for name, g, v in zip(names, values[3:3 + n], values[3 + n:]):
        ours['grad:' + name] = g
        given['var:' + name] = v
    given['images'], given['labels'] = ours['eval_images'][:BATCH], labels
    ours['eval_labels'] = raw[:, 0].astype(np.int32)

    rng = np.random.RandomState(1)
    tower_grads = [{n: rng.standard_normal(4 + i).astype(np.float32) for i, n in
                    enumerate(['a', 'b', 'c'])} for _ in range(3)]
    for t, grads_of_tower in enumerate(tower_grads):
        for n, g in grads_of_tower.items():
            given['tower%d:%s' % (t, n)] = g
    with tf.Graph().as_default():
        vs = {n: tf.Variable(np.zeros_like(g), name=n) for n, g in tower_grads[0].items()}
        averaged = multi_gpu_train.average_gradients(
            [[(tf.constant(t[n]), vs[n]) for n in sorted(vs)] for t in tower_grads])
        with tf.compat.v1.Session() as sess:
            for n, (g, _) in zip(sorted(vs), averaged):
                ours['avg:' + n] = sess.run(g)

    with tf.Graph().as_default():
        queue = tf.queue.FIFOQueue(9, [tf.string], shapes=())
        record = inputs.read_cifar10(queue)
        with tf.compat.v1.Session() as sess:
            sess.run(queue.enqueue([test_file]))
            sess.run(queue.close())
            rows = [sess.run([record.key, record.label, record.uint8image])
                    for _ in range(RECORDS)]
    ours['keys'] = np.array([r[0] for r in rows])
    ours['record_labels'] = np.array([r[1] for r in rows])
    ours['uint8images'] = np.array([r[2] for r in rows])
    batches_dir = os.path.join(data_root, 'cifar10', data.CIFAR10_DIRNAME)
    given.update(data_file=test_file, records=RECORDS, eval_dir=eval_dir,
                 batches_dir=batches_dir, draw_images=uint8images[:len(DRAWS)])
    for k, values in enumerate(DRAWS):
        given['draws:%d' % k] = np.array(values, np.float64)

    # cifar10/train.py's graph up to its train op.
    with tf.Graph().as_default() as graph:
        global_step = tf.compat.v1.train.get_or_create_global_step()
        images, labels = inputs.training_batches(batches_dir, BATCH)
        total_loss = model.loss(model.inference(images), labels)
        model.train(total_loss, global_step, model.Hyperparameters(batch_size=BATCH))
        ours.update(graph_facts.names(graph))
        ours['summary_tags'] = graph_facts.summary_tags(graph)
        ours['distorted'] = graph_facts.distort_with_draws(graph, given['draw_images'], given)
    return ours, given


@pytest.fixture(scope='module')
def both(converted, data_root, tmp_path_factory):
    work = str(tmp_path_factory.mktemp('equivalence'))
    ours, given = _our_side(data_root, work)
    in_path, out_path = os.path.join(work, 'in.npz'), os.path.join(work, 'out.npz')
    np.savez(in_path, **given)
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, 'tests', 'originals_side.py'), converted, in_path,
         out_path], capture_output=True, text=True, timeout=300, cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    return ours, dict(np.load(out_path))


def test_same_logits_loss_and_gradients(both):
    ours, original = both
    np.testing.assert_allclose(ours['logits'], original['logits'], **TOLERANCE)
    np.testing.assert_allclose(ours['loss'], original['loss'], **TOLERANCE)
    grads = sorted(k for k in original if k.startswith('grad:'))
    assert grads == sorted(k for k in ours if k.startswith('grad:'))  # the same variables
    assert len(grads) == 10
    for k in grads:
        np.testing.assert_allclose(ours[k], original[k], err_msg=k, **TOLERANCE)


def test_same_losses_collection_summary_tags_and_variables(both):
    """The original's wd=0.0 layers put a `weight_loss` term of 0 in the collection too; the
    tags are the names the original gave its summaries (TensorFlow 0.12 kept them as given)."""
    ours, original = both
    assert list(ours['losses']) == list(original['losses'])
    assert list(ours['losses']) == ['conv1/weight_loss', 'conv2/weight_loss',
                                    'local3/weight_loss', 'local4/weight_loss',
                                    'softmax_linear/weight_loss', 'cross_entropy']
    assert list(ours['variables']) == list(original['variables'])
    assert list(ours['summary_tags']) == list(original['summary_tags'])
    assert 'conv1/weight_loss (raw)' in ours['summary_tags']


def test_same_training_distortions_for_the_same_random_draws(both):
    """Each image as the original's distorted_inputs makes it (crop, flip, brightness,
    contrast, standardisation; per image, before shuffle_batch) from the same image and the
    same values of its random ops: exactly, for crops at both ends, flipped or not, the
    extremes of brightness and contrast."""
    ours, original = both
    assert ours['distorted'].shape == (len(DRAWS), 24, 24, 3)
    np.testing.assert_array_equal(ours['distorted'], original['distorted'])
    assert not np.array_equal(ours['distorted'][0], ours['distorted'][1])


def test_same_average_gradients(both):
    ours, original = both
    for k in ('avg:a', 'avg:b', 'avg:c'):
        np.testing.assert_allclose(ours[k], original[k], err_msg=k, **TOLERANCE)


def test_same_records(both):
    ours, original = both
    assert list(ours['keys']) == list(original['keys'])
    np.testing.assert_array_equal(ours['record_labels'], original['record_labels'])
    np.testing.assert_array_equal(ours['uint8images'], original['uint8images'])


def test_same_eval_images(both):
    """The original's eval batch comes from 16 threads (any order, records of the next epoch
    possibly): each of its images must be our preprocessing of one of the records, with its
    label."""
    ours, original = both
    assert original['eval_images'].shape == (RECORDS, 24, 24, 3)
    for image, label in zip(original['eval_images'], original['eval_labels']):
        distance = np.abs(ours['eval_images'] - image).max(axis=(1, 2, 3))
        i = int(np.argmin(distance))
        assert distance[i] < 1e-5, distance[i]
        assert ours['eval_labels'][i] == label


def test_the_originals_input_test_passes_on_our_reader(converted):
    """cifar10_input_test.py (three synthetic records: keys, labels, pixels, then
    OutOfRangeError), converted like the rest, with our cifar10/inputs.py as its
    cifar10_input."""
    code = ('import sys, runpy\n'
            'from cifar10 import inputs\n'
            'sys.modules["cifar10_input"] = inputs\n'
            'sys.argv = ["cifar10_input_test"]\n'
            'runpy.run_path(%r, run_name="__main__")\n'
            % os.path.join(converted, 'cifar10_input_test.py'))
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            cwd=REPO, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Ran 2 tests' in result.stderr and '\nOK' in result.stderr, result.stderr[-2000:]


def test_convert_stops_on_a_source_that_is_not_the_pinned_one(converted):
    source = os.path.join(originals.cache_dir(), 'original')
    files = {n: open(os.path.join(source, n)).read() for n in originals.FILES}
    files['cifar10_input.py'] = files['cifar10_input.py'].replace(
        'min_fraction_of_examples_in_queue = 0.4', 'min_fraction_of_examples_in_queue = 0.5')
    with pytest.raises(originals.OriginalsError, match=r'^cifar10_input\.py: expected 2 '):
        originals.convert_files(files)


def test_a_wrong_wheel_in_the_cache_is_refused(tmp_path):
    (tmp_path / originals.WHEEL['name']).write_bytes(b'not a wheel')
    with pytest.raises(originals.OriginalsError, match='11 bytes, expected 43091251'):
        originals.fetch_wheel(str(tmp_path))


def test_offline_and_not_cached_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('PIP_INDEX_URL', 'http://127.0.0.1:9/simple')
    monkeypatch.setenv('PIP_RETRIES', '0')
    monkeypatch.setenv('PIP_TIMEOUT', '1')
    assert originals.main(['--cache_dir', str(tmp_path), 'fetch']) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert 'could not download tensorflow==0.12.1' in err and str(tmp_path) in err
    assert 'pip download --no-deps' in err


def test_run_names_the_option_the_2016_multi_gpu_trainer_needs(tmp_path, capsys):
    assert originals.main(['run', '--run_dir', str(tmp_path), '--max_steps=1']) == 2
    err = capsys.readouterr().err.strip()
    assert err == ('tools.originals: error: --trainer=multi_gpu needs '
                   '--option=variable_scope_8957: the 2016 multi-GPU trainer cannot make its '
                   "moving averages nor Adam's slots on TF 2.21 (tensorflow/tensorflow#8957)")


def test_compare_prints_each_evaluation_and_draws_both(tmp_path, capsys):
    pytest.importorskip('matplotlib')
    ours, original = tmp_path / 'ours.json', tmp_path / 'original.json'
    ours.write_text(json.dumps({'curves': {'precision @ 1': [[0, 0.1], [100, 0.5], [200, 0.6]]}}))
    original.write_text(json.dumps({'curves': {'precision @ 1': [[100, 0.45], [150, 0.5],
                                                                  [300, 0.7]]}}))
    chart = tmp_path / 'c.png'
    assert originals.main(['compare', str(ours), str(original), '--chart', str(chart)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ['100', '0.5000', '0.4500', '+0.0500']
    assert lines[2].split() == ['150', '0.5500~', '0.5000', '+0.0500']  # interpolated
    assert lines[3].split() == ['300', '—', '0.7000', '—']  # beyond our curve
    assert lines[4].startswith('3 evaluations of the original, 2 within our curve; largest '
                               '|difference| 0.0500')
    assert chart.stat().st_size > 1000


def _scalars(folder, tag, points):
    with tf.Graph().as_default():
        writer = tf.compat.v1.summary.FileWriter(str(folder))
        for step, value in points:
            writer.add_summary(tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(
                tag=tag, simple_value=value)]), step)
        writer.close()


def test_probe_names_the_chart_it_is_drawn_in_and_keeps_the_comparison(tmp_path, capsys):
    from tools import report
    run = tmp_path / 'run'
    _scalars(run / 'train', 'tower_0/total_loss_1_1', [(0, 4.6), (99, 3.9)])
    _scalars(run / 'eval', 'Precision @ 1', [(99, 0.4), (199, 0.55)])  # the original's steps
    (run / 'provenance.json').write_text(json.dumps({
        'finished': '2026-12-05T20:00:00', 'wheel': 'tensorflow==0.12.1',
        'hardware': 'AMD EPYC, 2 cores'}))
    ours = tmp_path / 'result.json'
    ours.write_text(json.dumps({'curves': {'precision @ 1': [[0, 0.1], [100, 0.42],
                                                              [300, 0.62]]}}))
    probes = tmp_path / 'probes'
    probes.mkdir()
    out = probes / 'orig_case2.json'
    assert originals.main(['probe', str(run), '--out', str(out), '--what', 'a test',
                           '--reference_for', 'case2', '--compare_with', str(ours)]) == 0
    probe = json.loads(out.read_text())
    assert probe['curves'] == {'precision @ 1': [[100, 0.4], [200, 0.55]],
                               'train loss': [[1, 4.6], [100, 3.9]]}
    label = 'the original code (tensorflow==0.12.1)'
    assert (probe['reference_for'], probe['label']) == ('case2', label)
    assert report.load_reference_curves(str(probes)) == {
        'case2': (label, [(100, 0.4), (200, 0.55)])}  # what the case2 chart draws
    compared = probe['compared_with']
    assert [(r['step'], r['ours'], r['ours_interpolated']) for r in compared['rows']] == [
        (100, 0.42, False), (200, 0.52, True)]
    assert compared['largest_difference'] == pytest.approx(-0.03)
    # an experiment the report does not have: one line, nothing written
    capsys.readouterr()
    assert originals.main(['probe', str(run), '--out', str(tmp_path / 'x.json'), '--what', 'w',
                           '--reference_for', 'case9']) == 2
    assert capsys.readouterr().err.startswith(
        "tools.originals: error: --reference_for=case9: expected one of the report's "
        'experiments (cnn_mnist, ')
    assert not (tmp_path / 'x.json').exists()


def test_option_resume_goes_on_from_the_latest_checkpoint(converted, data_root, tmp_path,
                                                          capsys):
    # A 12-step run of the original single-GPU trainer (checkpoints at loop steps 0, 5, 10,
    # 11), its state moved back to step 5 as if it had been stopped there, then resumed.
    run_dir = tmp_path / 'run'
    args = ['run', '--run_dir', str(run_dir), '--trainer=single', '--max_steps=12',
            '--checkpoint_steps=5', '--summary_steps=5', '--min_fraction_of_examples_in_queue=0.001',
            '--num_examples=128', '--eval_interval_secs=600', '--data_root', data_root]
    assert originals.main(args + ['--option=resume']) == 0, capsys.readouterr().err
    train_dir = str(run_dir / 'train')
    # the figure in the last line; the polling evaluator stopped without a traceback
    assert re.search(r'^finished in \d+ s: precision @ 1 = 0\.\d{4} at step 12 \(the last '
                     r'checkpoint\); ', capsys.readouterr().out, re.M)
    eval_log = (run_dir / 'eval_log.txt').read_text()
    assert 'Traceback' not in eval_log and 'KeyboardInterrupt' not in eval_log, eval_log[-2000:]
    assert tf.train.latest_checkpoint(train_dir).endswith('model.ckpt-11')
    tf.compat.v1.train.update_checkpoint_state(train_dir, os.path.join(train_dir, 'model.ckpt-5'))
    capsys.readouterr()
    assert originals.main(args) == 2  # without the option: refused, nothing run
    assert 'has a train/ folder already (the originals do not resume)' in capsys.readouterr().err
    assert originals.main(args[:4] + ['--max_steps=13'] + args[5:] + ['--option=resume']) == 2
    assert 'the run there had other settings' in capsys.readouterr().err

    assert originals.main(args + ['--option=resume']) == 0, capsys.readouterr().err
    log = (run_dir / 'log.txt').read_text()
    assert 'option resume: restored %s/model.ckpt-5, going on at step 6' % train_dir in log
    latest = tf.train.latest_checkpoint(train_dir)
    assert latest.endswith('model.ckpt-11')
    assert tf.train.load_checkpoint(latest).get_tensor('Variable') == 12  # its global step
    record = json.loads((run_dir / 'provenance.json').read_text())
    assert 'finished' in record and record['options'] == ['resume']
    [part] = record['parts']
    assert part['resumed_from'] == os.path.join(train_dir, 'model.ckpt-5')
    assert part['options'] == ['resume'] and part['git_commit'] == record['git_commit']
