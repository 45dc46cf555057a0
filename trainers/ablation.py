r"""Figure 3 at CPU scale (Section 4.2.2) with one command: train every run,
then the table, the claims and the plot.

    python -m trainers.ablation --config=configs/figure3_cpu.py --workdir=workdirs/figure3_cpu

Runs `config.runs` one after the other, each as
`python -m trainers.train --config=configs/ablation_<run>.py
--workdir=<workdir>/<run>` would, with the same number of steps for all. A
run whose loss becomes NaN/Inf (Inception without BN at a high learning rate
may) is recorded as diverged and the next run starts. Then it writes

    workdir/figure3.png    validation accuracy of every run against steps
    workdir/figure3.md     Figure 3's table, the paper's numbers, the claims
    workdir/figure3.json   the same as data

and prints the table. Rerunning resumes what is unfinished; finished runs
are not trained again. --print_config prints the fields of the config
(configs/figure3_cpu.py) with their meaning.
"""

from trainers import quiet  # First: quiets TensorFlow before it starts.

import importlib
import os
import time

import ml_collections
from absl import app, flags, logging

from bn_zoo.training import cli

flags.adopt_module_key_flags(cli)

# The fields of configs/figure3_cpu.py.
CONFIG_DOCS = {
    "runs": ("The runs, trained one after the other: each is configs/ablation_<run>.py "
             "(print one with python -m trainers.train "
             "--config=configs/ablation_<run>.py --print_config)."),
    "baseline": "The run whose maximum accuracy is the target (Inception, as in Figure 3).",
    "target": "A fixed target accuracy instead (e.g. 0.95); None: the baseline's maximum.",
    "num_train_steps": "Training steps of every run (replaces the run configs' own).",
    "eval_every_steps": ("Evaluation interval of every run; also its steps_per_loop and "
                         "log_every_steps."),
    "data_dir": "TFDS data directory of every run (None: $TFDS_DATA_DIR); --data_dir overrides it.",
}


def _run_config(config, run):
    from bn_zoo.training.errors import ConfigError

    try:
        module = importlib.import_module(f"configs.ablation_{run}")
    except ModuleNotFoundError as error:
        raise ConfigError(f"config.runs names {run!r}, but there is no "
                          f"configs/ablation_{run}.py.") from error
    run_config = module.get_config()
    run_config.num_train_steps = config.num_train_steps
    for field in ("steps_per_loop", "log_every_steps", "eval_every_steps"):
        run_config[field] = config.eval_every_steps
    if config.data_dir is not None:
        run_config.data.data_dir = config.data_dir
    return run_config


def run_ablation(config, workdir, strategy=None):
    """Trains (or resumes) every run, then writes and returns the report."""
    import keras

    from bn_zoo import results, training
    from bn_zoo.training import workdir as workdir_lib
    from trainers import figure3

    start = time.perf_counter()
    run_configs = {run: _run_config(config, run) for run in config.runs}  # Fail early.
    notes, seconds = {}, {}
    for run, run_config in run_configs.items():
        if strategy is not None:
            run_config.strategy = strategy
        run_start = time.perf_counter()
        try:
            training.train(run_config, os.path.join(workdir, run))
        except training.NonFiniteLossError as error:
            logging.warning("%s diverged: %s", run, error)
            notes[run] = "diverged: loss became NaN/Inf"
        seconds[run] = round(time.perf_counter() - run_start, 1)
        keras.backend.clear_session()
    runs = results.read_runs([os.path.join(workdir, run) for run in config.runs])
    text, table, claims = figure3.report(
        runs, target=config.target, baseline=config.baseline,
        output=os.path.join(workdir, "figure3.png"), notes=notes)
    elapsed = round(time.perf_counter() - start, 1)
    text += f"\n\nTraining time per run (s): {seconds}; total {elapsed:.0f} s."
    workdir_lib.atomic_write(os.path.join(workdir, "figure3.md"), text + "\n")
    workdir_lib.write_json(os.path.join(workdir, "figure3.json"), {
        "table": table, "claims": claims, "notes": notes, "seconds": seconds,
        "total_seconds": elapsed})
    return text


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.set_up_logging()
    config = ml_collections.ConfigDict(cli.loaded(cli.CONFIG.value).to_dict())
    if cli.DATA_DIR.value is not None:
        config.data_dir = cli.DATA_DIR.value
    if cli.PRINT_CONFIG.value:
        from bn_zoo.training import describe

        overridden = cli.overridden_fields()
        if cli.DATA_DIR.value is not None:
            overridden.add("data_dir")  # This config's data directory field.
        header = (f"Config {cli.config_filename()} after the command line's overrides "
                  "(--config.<field>=<value>).")
        print(describe.format_fields(
            describe.plain_fields(config, CONFIG_DOCS, overridden), header), flush=True)
        return
    text = cli.run(lambda: run_ablation(config, cli.WORKDIR.value, cli.STRATEGY.value))
    print(text, flush=True)


if __name__ == "__main__":
    cli.require_flags()
    app.run(main, flags_parser=cli.parse_flags)
