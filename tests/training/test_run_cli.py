"""`python -m training.run` as a user runs it: one-paragraph errors, exact resume after SIGKILL and SIGTERM, one run
at a time in a --model_dir, and a console of its own lines (TensorFlow's only with --verbosity=1)."""

import json
import os
import re
import signal
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from absl import flags as absl_flags

from tests.tiny import (PYTHON, ROOT, Lines, messy_image_folder, start_command, subprocess_environment,
                        tiny_image_folder)
from training import run as run_cli

# No evaluation: these runs are about signals, resume and bad input (test_evaluate_cli covers evaluation).
TINY = ["--batch_size=4", "--log_every=1", "--sample_every=1000", "--eval_samples=0"]
#: A line of TensorFlow's C++ logging or with absl's prefix ("I1201 21:41:26.883657 140278019074944 file.py:330] ",
#: "I0000 00:00:1796171431.662758    3530 cudart_stub.cc:31] "), or absl's notice before its initialisation.
FOREIGN_LINE = re.compile(r"^([IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: All log messages before absl)", re.MULTILINE)


def assert_own_lines_only(output):
    """The command printed only its own lines: no TensorFlow C++ or absl-prefixed line."""
    assert not FOREIGN_LINE.search(output), output


def start(args, **env):
    return start_command("training.run", args, **env)


BAD_INPUTS = {
    "unknown dataset": (["--dataset=imagenet2021"], {}, "Unknown dataset 'imagenet2021'"),
    "missing folder": (["--dataset=folder:/no/such/images"], {}, "/no/such/images does not exist"),
    "impossible image size": (["--image_size=48"], {}, "no preset makes 48x48.*dcgan64 \\(64x64\\)"),
    "size of another preset": (["--image_size=64"], {}, "use --preset=dcgan64"),
    "unknown preset": (["--preset=imagenet256"], {}, "Unknown preset 'imagenet256'. Known presets: cifar32"),
    "batch not divisible": (["--strategy=mirrored", "--cpu_devices=2", "--batch_size=5"], {},
                            "batch size 5 does not split evenly over the 2 replicas.*--batch_size=6"),
    "bad ema_decay": (["--ema_decay=often"], {}, "ema_decay must be a number in \\(0, 1\\) or 'none'"),
    "bad ema_start": (["--ema_start=-5"], {}, "ema_start must be an integer >= 0"),
    "bad best_metric": (["--best_metric=sharpness"], {},
                        "best-checkpoint metric must be one of fid, inception_score, kid"),
    "invalid override": (["--d_lr=-1"], {}, "d_lr must be > 0"),
    "multi_worker without TF_CONFIG": (["--strategy=multi_worker"], {}, "needs the TF_CONFIG environment"),
    # The test writes a file where this one's --model_dir is (it was exit 1 and TensorFlow's FailedPreconditionError).
    "model_dir a file": ([], {}, "model_dir must be a directory, but .*/model_dir_a_file is a file"),
}


#: Bad inputs also run as a user runs them, in a process of their own: its exit status, no traceback, no line of
#: TensorFlow's logging; the strategy's replicas are made there as in any run.
IN_A_PROCESS = ("unknown dataset", "batch not divisible")


def test_bad_inputs_end_with_one_paragraph_and_no_traceback(tmp_path, capsys):
    (tmp_path / "model_dir_a_file").write_text("not a directory")
    processes = {name: start([*BAD_INPUTS[name][0], f"--model_dir={tmp_path / name.replace(' ', '_')}"],
                             **BAD_INPUTS[name][1]) for name in IN_A_PROCESS}
    for name, (args, _, pattern) in BAD_INPUTS.items():  # main() in this process: the same paragraph and status
        if name in IN_A_PROCESS:
            continue
        model_dir = tmp_path / name.replace(" ", "_")
        values = absl_flags.FlagValues()
        run_cli.define_flags(values)
        values(["run", *args, f"--model_dir={model_dir}"])
        assert run_cli.main(["run"], values) == 2, name
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and re.search(pattern, lines[0]), (name, lines)
        assert not (model_dir / "checkpoints").exists(), name
    for name, process in processes.items():
        output, _ = process.communicate(timeout=180)
        assert process.returncode == 2, (name, output)
        assert "Traceback" not in output, (name, output)
        message = output.strip().splitlines()[-1]
        assert message.startswith("Error: ") and re.search(BAD_INPUTS[name][2], message), (name, output)
        assert not (tmp_path / name.replace(" ", "_") / "checkpoints").exists()
        assert_own_lines_only(output)


SMALL_DATA_BAD_INPUTS = {
    "unknown augment": (["--augment=rotate"], "augment must be one of none, diffaugment, ada. Received: "
                                              "augment='rotate'"),
    "unknown policy op": (["--augment=diffaugment", "--augment_policy=color,zoom"],
                          "augment_policy must be a comma-separated list of color, translation, cutout, each at most "
                          "once. Received: augment_policy='color,zoom'"),
    "target outside (0, 1)": (["--augment=ada", "--ada_target=1.5"], r"ada_target must be in \(0, 1\)"),
    "negative lecam weight": (["--lecam_weight=-0.1"], r"lecam_weight must be a number >= 0 \(0: off\)"),
    "negative orthogonal_reg": (["--orthogonal_reg=-1e-4"], "orthogonal_reg must be a number >= 0"),
    "unknown fake labels": (["--fake_labels=balanced"], "fake_labels must be one of uniform, data"),
    "policy without augment": (["--augment_policy=color"], "--augment_policy applies to --augment=diffaugment or ada "
                                                           "only, and this run's --augment is none"),
    "ada target with diffaugment": (["--augment=diffaugment", "--ada_kimg=10"],
                                    "--ada_kimg applies to --augment=ada only"),
    "data labels without classes": (["--fake_labels=data", "--dataset=folder:{unlabelled}", "--image_size=32"],
                                    "this model is unconditional"),
    # And the memory option of the same kind.
    "no micro-batch": (["--grad_accumulation=0"], r"grad_accumulation must be an integer >= 1 \(1: none\)"),
    "uneven micro-batches": (["--batch_size=6", "--grad_accumulation=4"],
                             "grad_accumulation must divide batch_size .* Received: batch_size=6, grad_accumulation=4"),
}


def test_bad_small_data_flags_end_with_one_paragraph_before_anything_is_written(tmp_path, capsys):
    unlabelled = tiny_image_folder(tmp_path / "unlabelled", classes=(), per_class=4, size=16)
    for name, (args, pattern) in SMALL_DATA_BAD_INPUTS.items():
        model_dir = tmp_path / name.replace(" ", "_")
        values = absl_flags.FlagValues()
        run_cli.define_flags(values)
        values(["run", f"--model_dir={model_dir}", *(arg.format(unlabelled=unlabelled) for arg in args)])
        assert run_cli.main(["run"], values) == 2, name
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and re.search(pattern, lines[0]), (name, lines)
        assert not model_dir.exists(), name


def latest_step(model_dir):
    latest = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    return None if latest is None else int(latest.rsplit("-", 1)[1])


def checkpoint_values(path):
    """{name: value} of every variable in a checkpoint but its save counter (which counts this process's saves)."""
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(path)
            if not name.startswith(("save_counter", "_CHECKPOINTABLE_OBJECT_GRAPH"))}


def refuse_a_second_launch_then_stop(second, args, model_dir, capsys):
    """While `second` trains: the same command launched again (a scheduler retrying the job) is refused, naming it;
    then SIGTERM stops `second` with a checkpoint and releases the lock. Returns (the step it stopped at, its first
    logged step)."""
    first_step = int(second.wait_for(r"step +(\d+)/100000")[1])
    values = absl_flags.FlagValues()
    run_cli.define_flags(values)
    values(["run", *args])
    assert run_cli.main(["run"], values) == 2
    refused = capsys.readouterr().err.strip().splitlines()
    assert refused[-1].startswith(f"Error: {model_dir} is in use by another training run: its lock "
                                  f"{model_dir}/training.lock is held by process {second.process.pid} on host ")
    assert f"kill {second.process.pid} (SIGTERM: it saves a checkpoint and exits)" in refused[-1]
    second.process.send_signal(signal.SIGTERM)
    output = second.rest()
    assert second.process.returncode == 128 + signal.SIGTERM, output
    assert "Traceback" not in output
    assert not (model_dir / "training.lock").exists()  # released when SIGTERM stopped it
    assert_own_lines_only(output)
    assert re.search(r"^Warning: Stopped at step \d+; checkpoint", output, re.MULTILINE), output
    stopped = int(re.search(r"Stopped at step (\d+); checkpoint", output)[1])
    assert stopped >= first_step and latest_step(model_dir) == stopped
    assert (model_dir / "samples" / f"step_{stopped:08d}.png").exists()
    return stopped, first_step


def test_a_second_launch_is_refused_and_sigterm_stops_with_a_checkpoint(tmp_path, capsys):
    # The fast sibling of the next test: one training process.
    model_dir = tmp_path / "run"
    args = [f"--model_dir={model_dir}", "--train_steps=100000", "--checkpoint_every=1000", *TINY]
    with Lines(start(args)) as run:
        # The start line names the device kind: a user whose GPU is not used sees "on CPU" at once.
        run.wait_for(r"^Training synthetic32 from step 0 to 100000 on 1 replica\(s\) \(one device on CPU, XLA off\)")
        refuse_a_second_launch_then_stop(run, args, model_dir, capsys)


@pytest.mark.slow
def test_sigkill_and_sigterm_resume_exactly(tmp_path, capsys):
    model_dir = tmp_path / "interrupted"
    args = [f"--model_dir={model_dir}", "--train_steps=100000", "--checkpoint_every=2", *TINY]
    with Lines(start(args)) as first:
        first.wait_for(r"step +3/100000")  # the step-2 checkpoint was written before this line
        first.process.kill()  # SIGKILL: no chance to clean up, possibly in the middle of a save
        assert_own_lines_only(first.rest())
    killed_at = latest_step(model_dir)
    assert killed_at is not None and killed_at >= 2
    tf.train.load_checkpoint(tf.train.latest_checkpoint(str(model_dir / "checkpoints")))  # complete and readable
    assert json.loads((model_dir / "training.lock").read_text())["pid"] == first.process.pid  # left behind

    with Lines(start(args)) as second:
        # The killed run's lock: its process is gone, so the rerun takes the lock over.
        second.wait_for(rf"Took over the lock {model_dir}/training.lock of process {first.process.pid} on host .*: no "
                        rf"process {first.process.pid} that started then runs on this machine any more")
        restored = int(second.wait_for(r"Restored .*ckpt-\d+: step (\d+)")[1])
        assert restored == killed_at
        stopped, first_step = refuse_a_second_launch_then_stop(second, args, model_dir, capsys)
    assert first_step > restored

    # Killed, resumed and stopped again, the run holds bit for bit the state of one trained straight to that step:
    # weights, EMA, batch-norm statistics, spectral-norm vectors, Adam slots and the noise RNG.
    straight_dir = tmp_path / "straight"
    straight = start([f"--model_dir={straight_dir}", f"--train_steps={stopped}", "--checkpoint_every=0",
                      *TINY, "--verbosity=1"])
    output, _ = straight.communicate(timeout=300)
    assert straight.returncode == 0, output
    # --verbosity=1 asks for the console as TensorFlow and absl print it: prefixed lines, TensorFlow's own included.
    assert re.search(r"^I\d{4} [\d:.]+ +\d+ train_lib\.py:\d+\] Training synthetic32", output, re.MULTILINE), output
    resumed = checkpoint_values(str(model_dir / "checkpoints" / f"ckpt-{stopped}"))
    expected = checkpoint_values(str(straight_dir / "checkpoints" / f"ckpt-{stopped}"))
    assert resumed.keys() == expected.keys() and len(expected) > 300
    different = [name for name in expected if not np.array_equal(resumed[name], expected[name])]
    assert different == []


@pytest.mark.slow
def test_a_checkpoint_the_kernel_refuses_ends_in_one_paragraph(tmp_path):
    # Fast siblings: tests/training/test_train_lib.py (a full disk injected where TensorFlow saves, then the exact
    # resume) and tests/run/test_write_failures.py. Here the kernel refuses for real, without root: a file-size limit
    # (ulimit -f, in KiB) below the checkpoint's 17 MB fails the write with EFBIG as a full disk would (Python
    # ignores SIGXFSZ, so the write fails instead of the process being killed).
    model_dir = tmp_path / "limited"
    command = [PYTHON, "-m", "training.run", f"--model_dir={model_dir}", "--train_steps=4", "--checkpoint_every=2",
               *TINY]
    process = subprocess.run(["bash", "-c", 'ulimit -f 8192 && exec "$0" "$@"', *command], cwd=ROOT,
                             env=subprocess_environment(), capture_output=True, text=True, timeout=300)
    assert process.returncode == 2, process.stderr
    assert "Traceback" not in process.stderr
    assert process.stderr.strip().splitlines()[-1] == (
        f"Error: Could not write the checkpoint {model_dir}/checkpoints/ckpt-2: file too large. Its partial files "
        "(ckpt-2_temp) were removed. No checkpoint was written before it. Raise the file-size limit (ulimit -f) or use "
        "a directory on another filesystem, then rerun the same command.")
    assert os.listdir(model_dir / "checkpoints") == [] and not (model_dir / "training.lock").exists()


def assert_same_variables(path, expected_path):
    """Every variable of two checkpoints is bit for bit the same: weights, EMA, batch-norm statistics, spectral-norm
    vectors, Adam slots, the noise RNG and the data position."""
    values, expected = checkpoint_values(path), checkpoint_values(expected_path)
    assert values.keys() == expected.keys() and len(expected) > 100
    different = {name: float(np.max(np.abs(values[name].astype(np.float64) - expected[name])))
                 for name in expected if not np.array_equal(values[name], expected[name])}
    assert different == {}


@pytest.mark.slow
def test_the_issues_folder_run_resumes_bit_for_bit_with_tensorflows_own_threads(tmp_path):
    # As a user runs it: its own processes, TensorFlow's default thread pools (not the test session's one thread each)
    # and the preset the folder picks at 32x32 (cifar32), whose wide convolutions showed the fault.
    folder = messy_image_folder(tmp_path / "messy")
    flags = [f"--dataset=folder:{folder}", "--image_size=32", "--batch_size=8", "--seed=3", "--sample_every=0",
             "--eval_samples=0", "--checkpoint_every=3"]
    env = dict(TF_NUM_INTEROP_THREADS=None, TF_NUM_INTRAOP_THREADS=None)

    def train(model_dir, steps):
        process = start([*flags, f"--train_steps={steps}", f"--model_dir={model_dir}"], **env)
        output, _ = process.communicate(timeout=900)
        assert process.returncode == 0, output

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(straight, 6)
    train(resumed, 3)
    train(resumed, 6)
    assert_same_variables(str(resumed / "checkpoints" / "ckpt-6"), str(straight / "checkpoints" / "ckpt-6"))
