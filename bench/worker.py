"""One benchmark process (started by bench/run.py): builds one Workload, warms it up, then
times windows when asked, so that the runner can interleave several of them.

    python -m bench.worker MODEL VARIANT WORKDIR WARMUP_SECONDS [BATCH]

Protocol, one line each way: it prints '@@ ready {"examples_per_step": ..., "flops": ...}' once
warm; each 'run SECONDS' it reads is answered by '@@ result STEPS EXAMPLES ELAPSED' (at least
two steps, then until SECONDS have passed; a Workload with its own window() times it itself);
'quit' or end of input ends it. The ready line also names the variant the peers chose.
Everything else the models print goes to stderr. BATCH: the batch size of the Keras and PyTorch models (the
runner's bench.batch_size, read from the script: the PyTorch worker does not import it, nor
TensorFlow).
"""

import json
import os
import sys


def _window(workload, seconds, min_steps=2):
    """One timed window of `seconds` (at least min_steps steps): (steps, seconds)."""
    import bench
    if workload.window:
        return workload.window(seconds)
    return bench.timed(workload.step, seconds, min_steps)


def _serve(workload, protocol, warmup_seconds):
    _window(workload, warmup_seconds)
    protocol.write('@@ ready %s\n' % json.dumps({'examples_per_step': workload.examples_per_step,
                                                 'flops': workload.flops,
                                                 'variant': workload.variant}))
    protocol.flush()
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == 'quit':
            break
        steps, elapsed = _window(workload, float(words[1]))
        protocol.write('@@ result %d %d %.6f\n' % (steps, steps * workload.examples_per_step,
                                                   elapsed))
        protocol.flush()
    workload.close()


def main():
    model, variant, workdir, warmup_seconds = sys.argv[1:5]
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else None
    # The protocol gets this process's stdout; whatever the scripts print goes to stderr.
    protocol = os.fdopen(os.dup(1), 'w')
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if model == 'matmul_peak':
        from bench import flops
        with _default_graph():
            return _serve(flops.matmul_workload(variant), protocol, float(warmup_seconds))
    if variant in ('keras', 'pytorch'):  # each setting's probe as long as the warm-up
        from bench import peers
        return _serve(peers.build(model, variant, batch, float(warmup_seconds)), protocol,
                      float(warmup_seconds))
    from bench import workloads
    with _default_graph():
        _serve(workloads.build(model, variant, workdir), protocol, float(warmup_seconds))


def _default_graph():
    import tensorflow as tf
    return tf.Graph().as_default()


if __name__ == '__main__':
    main()
