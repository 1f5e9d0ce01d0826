"""A script's entry point, the same in every script:

    if __name__ == '__main__':
        entry.run(define_flags, main, 'log_dir', 'learning_rate')

defines the script's flags, then runs its main(argv) under absl in training.main_for (the
one-line errors)."""

from absl import app

from common import training


def run(define_flags, main, run_dir_flag=None, learning_rate_flag=None, errors=(),
        flags_parser=None):
    """Calls define_flags(), then app.run(training.main_for(main, run_dir_flag,
    learning_rate_flag, errors)); flags_parser: app.run's, for a script that reads its command
    line its own way."""
    define_flags()
    main = training.main_for(main, run_dir_flag, learning_rate_flag, errors)
    if flags_parser is None:
        app.run(main)
    else:
        app.run(main, flags_parser=flags_parser)
