"""Torn files and full disks in a run directory: one line each, and a rerun
that repairs what it can.

Real faults on real runs of bn_mlp (tiny: 600 training images):

- torn by a kill (`os.truncate`): the TensorBoard event file (the last 7
  bytes, as `truncate -s -7` does), metrics.csv (its last row cut) and
  config.json. The readers (`bn_zoo.runs`, the paper's `read_run`, export
  and its command line) refuse each with one line naming the file and the
  fix; the rerun with a larger num_train_steps keeps the readable records,
  drops the torn ends, resumes, and ends with the metrics, TensorBoard points,
  weights and config.json of an uninterrupted run computed in this process;
  a finished run with a torn final.json and metrics.csv is finished again.
  A malformed row that is not the last is refused before anything is
  written (the torn event file and config.json stay as they were).
- a full disk (a real tmpfs, filled to a chosen number of free 4 KiB pages):
  a fresh run fails on run.lock, config.json, labels.txt, the event file and
  metrics.csv in turn, each one line naming the file, leaving nothing; an
  extended run whose event file fills the disk stops with one line (as
  `python -m trainers.train` prints it), the file cut back to whole
  records, and the rerun after freeing space ends with the uninterrupted
  run's results.

The tmpfs cases need root (mount); elsewhere they are skipped.
"""

import json
import logging
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

import commands
import config_flags
from bn_zoo import runs, training
from bn_zoo.training import summaries
from configs import mnist as mnist_configs
from file_tree import snapshot
from training_state import assert_same_training_state

# Evaluations and checkpoints every 20 steps, a log line every 10.
TINY = ["--config.data.train_split=train[:600]", "--config.data.eval_split=test[:300]",
        "--config.eval_batch_size=300", "--config.probe.num_examples=50",
        "--config.population_batches=0", "--config.steps_per_loop=10",
        "--config.log_every_steps=10", "--config.eval_every_steps=20",
        "--config.checkpoint_every_steps=20"]


def config(steps, extra=()):
    return config_flags.apply(mnist_configs.get_config("bn_mlp"),
                              [*TINY, f"--config.num_train_steps={steps}", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """{"run40": a run stopped at step 40, "ref60": the uninterrupted run of
    60 steps}, trained in this process; tests work on copies."""
    root = tmp_path_factory.mktemp("trained")
    training.train(config(40), str(root / "run40"))
    training.train(config(60), str(root / "ref60"))
    return {name: root / name for name in ("run40", "ref60")}


def copy(trained, name, tmp_path):
    target = tmp_path / name
    shutil.copytree(trained[name], target)
    return target


def event_file(workdir):
    (path,) = summaries.event_files(str(workdir / "tensorboard"))
    return path


def cut(path, size):
    """Truncates `path` to `size` bytes (negative: that many off its end)."""
    os.truncate(path, size if size >= 0 else os.path.getsize(path) + size)


def points(workdir):
    """{tag: [(step, value), ...]} of every event file of a run, by step."""
    found = {}
    for path in summaries.event_files(str(workdir / "tensorboard")):
        for tag, values in summaries.read_scalars(path).items():
            found.setdefault(tag, []).extend(values)
    return {tag: sorted(values) for tag, values in found.items()}


def last_record_tag_and_step(path):
    from tensorflow.core.util import event_pb2

    event = event_pb2.Event.FromString(list(tf.data.TFRecordDataset(path))[-1].numpy())
    return event.summary.value[0].tag, event.step


def assert_same_training(resumed, reference):
    """The newest checkpoints of workdirs `resumed` and `reference` hold the
    same training state."""
    assert_same_training_state(tf.train.latest_checkpoint(resumed / "checkpoints"),
                               tf.train.latest_checkpoint(reference / "checkpoints"))


def assert_same_rows(rows, reference, without_train_at=()):
    """metrics.csv rows equal the reference's, except empty train_* cells
    at the steps `without_train_at` (evaluated again after a resume)."""
    assert [r["step"] for r in rows] == [r["step"] for r in reference]
    for row, expected in zip(rows, reference):
        for column, value in expected.items():
            if column.startswith("train_") and row["step"] in without_train_at:
                assert np.isnan(row[column]), (row["step"], column)
            else:
                np.testing.assert_allclose(row[column], value, rtol=1e-5,
                                           err_msg=(row["step"], column))


def assert_same_points(ours, theirs, missing=()):
    """TensorBoard points equal the reference's (their steps; their values
    but the speed's), less the (tag, step) pairs in `missing`."""
    expected = {tag: [(s, v) for s, v in values if (tag, s) not in missing]
                for tag, values in theirs.items()}
    assert {t: [s for s, _ in v] for t, v in ours.items()} == \
        {t: [s for s, _ in v] for t, v in expected.items()}
    for tag in set(expected) - {"train/steps_per_second"}:  # A timing.
        np.testing.assert_allclose([v for _, v in ours[tag]], [v for _, v in expected[tag]],
                                   rtol=1e-5, err_msg=tag)


RETRAIN = (r"Rerun the command that trained the run \(python -m trainers\.train with its "
           r"--config and --workdir\): it resumes from the newest checkpoint and ")


def test_readers_refuse_torn_files_with_one_line(trained, tmp_path):
    from bn_zoo.export import exporter
    from bn_zoo.paper import workdirs

    run = copy(trained, "run40", tmp_path)
    config_json = run / "config.json"
    text = config_json.read_bytes()
    cut(config_json, len(text) // 2)
    exported = tmp_path / "exported"  # The command line, meanwhile, on a copy.
    shutil.copytree(run, exported)
    export = commands.launch("trainers.export", [f"--workdir={exported}",
                                                 f"--export_dir={tmp_path / 'export'}"])

    def torn_config(workdir):
        path = re.escape(str(workdir / "config.json"))
        return (rf"{path} is not valid JSON \([^)]*: line \d+ column \d+ of its "
                rf"{len(text) // 2} bytes\)\. {RETRAIN}writes config\.json again\.")
    for reader in (runs.read_config, runs.model_name, runs.restore, runs.restore_model,
                   exporter.workdir_model_name, workdirs.read_run):
        with pytest.raises(runs.TornFileError) as refused:
            reader(str(run))
        assert re.fullmatch(torn_config(run), str(refused.value)), (reader, str(refused.value))

    config_json.write_bytes(text)
    metrics = run / "metrics.csv"
    cut(metrics, -20)
    last = metrics.read_text().splitlines()[-1]
    torn_row = (rf"{re.escape(str(metrics))} ends inside line 4 "
                rf"\({re.escape(repr(last[:40] + '...'))}\): the row is cut short\. "
                rf"{RETRAIN}drops the cut row, or delete that line\.")
    for reader in (runs.read_metrics, workdirs.read_run):
        with pytest.raises(runs.TornFileError) as refused:
            reader(str(run))
        assert re.fullmatch(torn_row, str(refused.value)), (reader, str(refused.value))
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text(lines[0] + "20,1.5\n" + "".join(lines[2:]))  # Not the last row.
    with pytest.raises(runs.TornFileError, match=re.escape(
            f"{metrics} has 2 fields at line 2 and 10 in its header ('20,1.5'). Fix or "
            "delete that line.")):
        runs.read_metrics(str(run))

    final = run / "final.json"
    final.write_text('{"step": 40, "eval_accu')
    for reader in (runs.read_final, runs.restore):
        with pytest.raises(runs.TornFileError, match=re.escape(
                f"{final} is not valid JSON (Unterminated string starting at: line 1 column "
                "14 of its 23 bytes).") + " " + RETRAIN + r"writes final\.json again\."):
            reader(str(run))

    err = export.communicate(timeout=300)[1]
    assert export.returncode == 1, err[-3000:]
    assert re.fullmatch(r"ERROR \(TornFileError\): Export failed, nothing was written: "
                        + torn_config(exported),
                        commands.error_line(err)), err[-3000:]
    assert "Traceback" not in err and not os.path.exists(tmp_path / "export")


def test_where_a_metrics_file_is_cut_decides_if_it_is_torn(tmp_path):
    """A cut at a line's end leaves whole rows; a cut inside the header or a
    row (no newline at the end) is torn; an empty file has no rows."""
    path = tmp_path / "metrics.csv"
    whole = "step,eval_loss\n0,2.5\n10,\n"
    for text, rows, problem in [
            (whole, [(0, 2.5), (10, None)], None),
            (whole[:-4], [(0, 2.5)], None),  # Cut after "0,2.5\n".
            (whole[:-2], None, "ends inside line 3 ('10'): the row is cut short"),
            (whole[:6], None, "ends inside its header line ('step,e')"),
            ("", [], None)]:
        path.write_text(text)
        if problem is None:
            got = [(r["step"], None if np.isnan(r["eval_loss"]) else r["eval_loss"])
                   for r in runs.read_metrics(str(tmp_path))]
            assert got == rows, text
        else:
            with pytest.raises(runs.TornFileError) as torn:
                runs.read_metrics(str(tmp_path))
            assert torn.value.problem == problem, text
            assert str(torn.value).startswith(f"{path} {problem}. {RETRAIN[:10]}")


@pytest.mark.parametrize("torn", [("events",), ("events", "metrics", "config")])
def test_a_rerun_repairs_torn_files_and_matches_the_uninterrupted_run(
        trained, tmp_path, caplog, torn):
    run, reference = copy(trained, "run40", tmp_path), trained["ref60"]
    events = event_file(run)
    lost = last_record_tag_and_step(events)  # The record the 7 bytes belong to.
    assert lost[1] == 40
    cut(events, -7)
    if "metrics" in torn:
        cut(run / "metrics.csv", -20)
    if "config" in torn:
        cut(run / "config.json", 300)

    with caplog.at_level(logging.INFO, logger="absl"):
        training.train(config(60), str(run))
    logged = "\n".join(caplog.messages)
    where = re.escape(str(run))
    assert re.search(rf"{re.escape(events)} ends in \d+ byte\(s\) that are not a whole "
                     r"event record \(.*\): rewriting it with its \d+ readable record\(s\)\.",
                     logged), logged
    assert f"Resumed from {run}/checkpoints/ckpt-40 at step 40." in caplog.messages

    assert_same_training(run, reference)
    assert (run / "config.json").read_bytes() == (reference / "config.json").read_bytes()
    assert "run.lock" not in os.listdir(run)
    again = ()
    if "metrics" in torn:
        # The dropped row's step is evaluated again, its events with it.
        assert re.search(rf"{where}/metrics.csv ends inside line 4 \(.*\): the row is cut "
                         r"short \(.*\): this run drops that line\.", logged), logged
        assert (f"{run}/metrics.csv has no row for step 40: evaluating it again (its "
                "train_* cells stay empty).") in caplog.messages
        again = (40,)
    if "config" in torn:
        assert re.search(rf"{where}/config.json is not valid JSON \(.*\): this run resumes "
                         "from the newest checkpoint with the config of this command", logged)
    assert_same_rows(runs.read_metrics(str(run)), runs.read_metrics(str(reference)), again)
    assert_same_points(points(run), points(reference), missing=() if again else {lost})


def test_a_finished_run_with_torn_files_is_finished_again(trained, tmp_path, caplog):
    run, reference = copy(trained, "ref60", tmp_path), trained["ref60"]
    cut(run / "final.json", 10)
    cut(run / "metrics.csv", -20)
    with caplog.at_level(logging.INFO, logger="absl"):
        final = training.train(config(60), str(run))
    assert not any("already complete" in m for m in caplog.messages)
    assert json.loads((run / "final.json").read_text()) == final
    assert final == json.loads((reference / "final.json").read_text())
    assert_same_rows(runs.read_metrics(str(run)), runs.read_metrics(str(reference)), (60,))
    assert_same_points(points(run), points(reference))
    with caplog.at_level(logging.INFO, logger="absl"):  # Now it is complete.
        assert training.train(config(60), str(run)) == final
    assert f"{run} is already complete at step 60." in caplog.messages


def test_a_refused_rerun_rewrites_nothing(trained, tmp_path, monkeypatch, capsys):
    """Every read that can refuse a run comes before its first write: the
    torn event file and config.json (40 steps) stay as they were."""
    from bn_zoo.training import cli

    run = copy(trained, "run40", tmp_path)
    cut(event_file(run), -7)
    metrics = run / "metrics.csv"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text(lines[0] + "0,,\n" + "".join(lines[2:]))
    before = snapshot(run)
    monkeypatch.setattr("sys.argv", ["trainers/train.py"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        cli.run(lambda: training.train(config(60), str(run)))
    assert exited.value.code == 1
    assert commands.error_line(capsys.readouterr().err) == (
        f"ERROR (TornFileError): {metrics} has 3 fields at line 2 and 10 in its header "
        "('0,,'). Fix or delete that line.")
    assert snapshot(run) == before


@pytest.fixture
def tmpfs(tmp_path):
    """A 2 MiB tmpfs at tmp_path/disk (skips where mount is not allowed), and
    `fill(pages)`, which leaves that many 4 KiB pages free on it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                      capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")

    def fill(pages):
        filler = disk / "filler"
        if filler.exists():
            filler.unlink()
        stat = os.statvfs(disk)
        assert stat.f_bsize == 4096
        with open(filler, "wb") as f:
            f.write(b"\0" * ((stat.f_bavail - pages) * 4096))
        assert os.statvfs(disk).f_bavail == pages

    yield disk, fill
    subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_on_each_file_of_a_fresh_run_is_one_line(tmpfs):
    """With k free pages a fresh run fails on its (k+1)-th page: run.lock,
    config.json, labels.txt (a page each), the event file (its first
    record), metrics.csv (the row of step 0); each is named, nothing is left."""
    disk, fill = tmpfs
    run = disk / "run"
    expected = ["run.lock", "config.json", "labels.txt",
                r"tensorboard/events\.out\.tfevents\.[^ ]+", "metrics.csv"]
    where = re.escape(str(run))
    for pages, name in enumerate(expected):
        fill(pages)
        with pytest.raises(training.DiskFullError) as failed:
            training.train(config(20), str(run))
        assert re.fullmatch(
            rf"Could not write {where}/{name} \(No space left on device\); nothing is left "
            r"half-written and no checkpoint was saved\. Free some space and rerun the same "
            r"command to start again\.", str(failed.value)), (pages, str(failed.value))
        assert os.listdir(disk) == ["filler"], pages


def test_a_full_disk_while_writing_events_resumes_to_the_uninterrupted_result(
        tmpfs, tmp_path, monkeypatch, capsys):
    """A finished run of 20 steps, extended to 40, logs every step: its new
    event file outgrows its page with 2 pages free (run.lock takes one, the
    event file the other) before the evaluation and checkpoint of step 40.
    The failing run goes through `cli.run`, which prints its line for
    trainers.train's main."""
    from bn_zoo.training import cli

    disk, fill = tmpfs
    run = disk / "run"
    every_step = ["--config.steps_per_loop=1", "--config.log_every_steps=1"]
    training.train(config(20, every_step), str(run))
    fill(2)
    monkeypatch.setattr("sys.argv", ["trainers/train.py"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        cli.run(lambda: training.train(config(40, every_step), str(run)))
    assert exited.value.code == 1
    err = capsys.readouterr().err
    line = commands.error_line(err)
    assert "Traceback" not in err and err.rstrip().endswith(line)
    where = re.escape(str(run))
    match = re.fullmatch(
        rf"ERROR \(DiskFullError\): Could not write ({where}/tensorboard/events\.out\.tfevents"
        r"\.[^ ]+) \(No space left on device\); nothing is left half-written and the newest "
        rf"checkpoint {where}/checkpoints/ckpt-20 is kept\. Free some space and rerun the same "
        r"command to resume\.", line)
    assert match, line
    assert summaries.read_events(match.group(1))[1] == 0  # Cut back to whole records.
    assert runs.latest_step(str(run / "checkpoints")) == 20
    assert sorted(os.listdir(run)) == ["checkpoints", "config.json", "final.json",
                                       "labels.txt", "metrics.csv", "tensorboard"]

    os.remove(disk / "filler")
    training.train(config(40, every_step), str(run))
    reference = tmp_path / "reference"
    training.train(config(40, every_step), str(reference))
    assert_same_training(run, reference)
    assert_same_rows(runs.read_metrics(str(run)), runs.read_metrics(str(reference)))
    assert_same_points(points(run), points(reference))
