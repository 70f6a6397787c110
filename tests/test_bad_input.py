"""Bad input gets one clear line (a ValueError, or `psp-lite: error: ...` and exit 2) before any
data is loaded or any training starts; never a traceback, never a silent surprise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import psp_lite.analytic.cross_layer
import psp_lite.experiments.comparison
import psp_lite.report
import psp_lite.runners.cached as train_module
import psp_lite.training
from psp_lite import cli, experiments
from psp_lite.cli import commands as cli_commands
from psp_lite.data import DATASETS
from psp_lite.device import pick_device
from psp_lite.models import MODELS
from psp_lite.training.config import RunConfig

SMALL = dict(dataset="synthetic-mnist", epochs=2, train_subset=100, test_subset=50, device="cpu")


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture
def nothing_runs(tmp_path, monkeypatch):
    """Fail the test if any data is loaded or any run trained; isolate cache and output."""
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("bad input must be refused before loading data or training")

    monkeypatch.setattr(psp_lite.experiments.comparison, "load_dataset", forbidden)
    monkeypatch.setattr(train_module, "load_dataset", forbidden)
    monkeypatch.setattr(train_module, "train", forbidden)


def cli_error(argv: list[str], capsys) -> str:
    """Run `psp-lite argv`; assert exit status 2 and exactly one stderr line; return it."""
    try:
        code = cli.main(argv)
    except SystemExit as exit_info:  # argparse's own refusals exit from parse_args
        code = exit_info.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith("psp-lite: error: ") and "Traceback" not in err[0]
    return err[0]


def test_cli_epochs_0_is_refused_not_taken_as_the_50_epoch_protocol(nothing_runs, capsys):
    line = cli_error(["reproduce", "fig2", "--epochs", "0"], capsys)
    assert line == ("psp-lite: error: argument --epochs: expected an integer >= 1, got 0 "
                    "(see psp-lite reproduce --help)")


def test_cli_seeds_0_is_refused(nothing_runs, capsys):
    line = cli_error(["reproduce", "fig2", "--seeds", "0", "--epochs", "1"], capsys)
    assert "--seeds: expected an integer >= 1, got 0" in line


def test_cli_sweep_epochs_0_is_refused(nothing_runs, capsys):
    line = cli_error(["sweep", "--epochs", "0", "--dataset", "synthetic-mnist"], capsys)
    assert line == ("psp-lite: error: argument --epochs: expected an integer >= 1, got 0 "
                    "(see psp-lite sweep --help)")


def test_cli_device_gpu_names_the_valid_devices(nothing_runs, capsys):
    line = cli_error(["reproduce", "fig2", "--device", "gpu", "--epochs", "1"], capsys)
    assert line == ("psp-lite: error: unknown device 'gpu'; use 'cpu', 'cuda', 'cuda:N', 'mps' "
                    "or 'auto'.")


def test_cli_absent_cuda_device_is_refused(nothing_runs, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    line = cli_error(["reproduce", "fig2", "--device", "cuda:7", "--epochs", "1"], capsys)
    assert "'cuda:7'" in line and "2 CUDA device(s) (cuda:0 to cuda:1)" in line


def test_cli_table2_on_fashion_mnist_is_refused_before_loading_data(nothing_runs, capsys):
    line = cli_error(["reproduce", "table2", "--dataset", "fashion-mnist", "--epochs", "1"], capsys)
    assert line == ("psp-lite: error: table2 trains resnet18 on 3x32x32 images but fashion-mnist "
                    "has 1x28x28 images; use --dataset cifar10 or synthetic-cifar10 for table2.")


def test_cli_fig2_on_cifar10_is_refused_before_loading_data(nothing_runs, capsys):
    line = cli_error(["reproduce", "fig2", "--dataset", "cifar10"], capsys)
    assert "fig2 trains lenet5 on 1x28x28 images but cifar10 has 3x32x32" in line


def test_cli_unknown_dataset_names_the_choices(nothing_runs, capsys):
    line = cli_error(["reproduce", "fig2", "--dataset", "imagenet"], capsys)
    assert "unknown dataset 'imagenet'" in line
    assert all(name in line for name in DATASETS)


def test_cli_unwritable_output_folder_is_refused_before_training(nothing_runs, capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    line = cli_error(["reproduce", "fig2", "--epochs", "1", "--out", str(tmp_path / "file" / "o")],
                     capsys)
    assert f"cannot write into {tmp_path / 'file' / 'o'}" in line and "--out" in line


def test_cli_unknown_target_is_one_line(capsys):
    line = cli_error(["reproduce", "fig9"], capsys)
    assert "invalid choice: 'fig9'" in line


def test_cli_unwritable_cache_is_one_line_and_nothing_is_trained(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path / "file" / "cache"))
    trained = []
    monkeypatch.setattr(train_module, "train", lambda *a, **k: trained.append(a))
    try:
        code = cli.main(["reproduce", "fig2", "--dataset", "synthetic-mnist", "--epochs", "1",
                         "--out", str(tmp_path / "out"), "--no-progress", "--device", "cpu"])
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and trained == []
    assert err[-1].startswith("psp-lite: error: the run cache folder ")
    assert "set PSP_LITE_CACHE" in err[-1] and "use_cache" not in err[-1]  # CLI words only


# ----------------------------------------------------------------------------- choose_dataset


def test_choose_dataset_unknown_name_is_a_value_error_naming_the_choices():
    with pytest.raises(ValueError) as info:
        experiments.choose_dataset("imagenet", smoke=True)
    message = str(info.value)
    assert "\n" not in message and "unknown dataset 'imagenet'" in message
    assert all(name in message for name in DATASETS)


def test_choose_dataset_accepts_spelling_variants():
    choice = experiments.choose_dataset("Synthetic_MNIST", smoke=True)
    assert choice.dataset == "synthetic-mnist" and not choice.stand_in


# ----------------------------------------------------------------------------- RunConfig


@pytest.mark.parametrize("bad, message", [
    (dict(epochs=True), r"epochs must be a positive integer, got True \(bool\)"),
    (dict(epochs=2.0), r"epochs must be a positive integer, got 2.0 \(float\)"),
    (dict(batch_size=0), "batch_size must be a positive integer, got 0"),
    (dict(seed=-1), r"seed must be an integer in 0..4294967295, got -1"),
    (dict(dataset="imagenet"), "unknown dataset 'imagenet'; choose one of mnist, fashion-mnist"),
    (dict(model="vgg16"), "unknown model 'vgg16'; choose one of lenet5, resnet18"),
    (dict(model="resnet18"), "model 'resnet18' takes 3x32x32 images but dataset "
                             "'synthetic-mnist' has 1x28x28 images; use model 'lenet5'"),
    (dict(momentum=-0.1), r"momentum must be a finite number in \[0, 1\), got -0.1"),
    (dict(momentum=1.0), r"momentum must be a finite number in \[0, 1\)"),
    (dict(lr_gamma=math.nan), r"lr_gamma must be a finite number in \(0, inf\), got nan"),
    (dict(lr_gamma=math.inf), "lr_gamma must be a finite number"),
    (dict(lr_gamma=0.0), "lr_gamma must be a finite number"),
    (dict(lr_gamma=-0.1), "lr_gamma must be a finite number"),
    (dict(lr=math.inf), "lr must be a finite number"),
    (dict(lr="0.1"), r"lr must be a finite number in \(0, 1e\+06\], got '0.1' \(str\)"),
    (dict(lr_milestones=(3, 1)), "lr_milestones must be strictly increasing"),
    (dict(lr_milestones=(0,)), "lr_milestones must be a positive integer"),
    (dict(train_subset=-5), "train_subset must be a positive integer, got -5"),
    (dict(train_subset=0), "train_subset must be a positive integer, got 0"),
    (dict(test_subset=0), "test_subset must be a positive integer, got 0"),
    (dict(test_subset=20000), "test_subset=20000 exceeds the 10000 items of synthetic-mnist"),
    (dict(snapshot_epochs=(3,)), "snapshot_epochs holds epoch 3, outside this 2-epoch run"),
    (dict(snapshot_epochs=(0,)), "snapshot_epochs holds epoch 0, outside this 2-epoch run"),
    (dict(snapshot_epochs=(-3,)), "snapshot_epochs holds epoch -3"),
    (dict(snapshot_epochs=(1.5,)), "snapshot_epochs must hold integer epochs"),
    (dict(augment="yes"), "augment must be True or False"),
    (dict(device="gpu"), "unknown device 'gpu'; use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"),
    (dict(device="meta"), "unsupported device 'meta'"),
    (dict(regularizer="psp", lam=np.float64("nan")), "lambda must be a finite number"),
])
def test_bad_run_config_is_refused_at_construction(bad, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**{**SMALL, **bad})


def test_good_values_are_stored_as_plain_python_values():
    config = RunConfig(dataset="Synthetic_MNIST", model="LeNet-5", regularizer="psp",
                       lam=np.float32(0.5), epochs=np.int64(3), momentum=np.float64(0.9),
                       lr_milestones=[np.int64(1), 2], snapshot_epochs=[-1, np.int32(1)],
                       augment=np.bool_(True), train_subset=np.int64(100), device="cpu")
    assert (config.dataset, config.model) == ("synthetic-mnist", "lenet5")
    assert config.lam == 0.5 and type(config.lam) is float
    assert config.epochs == 3 and type(config.epochs) is int
    assert type(config.momentum) is float and config.momentum == 0.9
    assert config.lr_milestones == (1, 2) and all(type(m) is int for m in config.lr_milestones)
    assert config.snapshot_epochs == (-1, 1)
    assert config.augment is True and type(config.train_subset) is int
    assert RunConfig.from_dict(config.to_dict()) == config


# ----------------------------------------------------------------------------- pick_device


@pytest.fixture
def machine(monkeypatch):
    """Pretend this machine has `cuda` CUDA devices and MPS or not."""
    def set_up(cuda: int = 0, mps: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    return set_up


@pytest.mark.parametrize("requested", ["cuda", "cuda:0", "cuda:7", torch.device("cuda", 1)])
def test_cuda_on_a_machine_without_cuda_fails_at_once(machine, requested):
    machine(cuda=0)
    with pytest.raises(ValueError, match="CUDA is not available on this machine; use "
                                         "device='cpu'"):
        pick_device(requested)


def test_cuda_index_beyond_the_devices_fails_at_once(machine):
    machine(cuda=2)
    with pytest.raises(ValueError, match=r"'cuda:7' was asked for but this machine has 2 CUDA "
                                         r"device\(s\) \(cuda:0 to cuda:1\)"):
        pick_device("cuda:7")
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    assert pick_device("cuda") == torch.device("cuda")


def test_mps_on_a_machine_without_mps_fails_at_once(machine):
    machine(cuda=0, mps=False)
    with pytest.raises(ValueError, match="Apple's MPS is not available on this machine"):
        pick_device("mps")
    machine(cuda=0, mps=True)
    assert pick_device("mps") == torch.device("mps")


@pytest.mark.parametrize("requested", ["gpu", "cuda:x", "tpu", "", 3.5])
def test_unknown_device_names_the_choices(machine, requested):
    machine(cuda=1)
    with pytest.raises(ValueError, match="use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"):
        pick_device(requested)


@pytest.mark.parametrize("cuda, mps, expected", [
    (0, False, "cpu"), (0, True, "mps"), (1, False, "cuda"), (2, True, "cuda")])
def test_auto_picks_cuda_then_mps_then_cpu(machine, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert pick_device().type == expected and pick_device("auto").type == expected
    assert pick_device("cpu") == torch.device("cpu")


def test_resolved_config_names_the_device_and_keeps_an_explicit_index(machine):
    machine(cuda=2)
    assert RunConfig(**{**SMALL, "device": "auto"}).resolved().device == "cuda"
    assert RunConfig(**{**SMALL, "device": "cuda:1"}).resolved().device == "cuda:1"
    machine(cuda=0, mps=True)
    assert RunConfig(**{**SMALL, "device": "auto"}).resolved().device == "mps"
    with pytest.raises(ValueError, match="CUDA is not available"):
        RunConfig(**{**SMALL, "device": "cuda"}).resolved()


def test_every_model_and_dataset_name_is_accepted_where_the_shapes_fit():
    for dataset in DATASETS:
        fits = [m for m in MODELS if (m == "lenet5") == ("mnist" in dataset)]
        for model in fits:
            assert RunConfig(dataset=dataset, model=model).model == model


# ----------------------------------------------------------------------------- more of the CLI


@pytest.mark.parametrize("argv, message", [
    (["sweep", "--device", "foo"], "unknown device 'foo'; use 'cpu', 'cuda', 'cuda:N'"),
    (["sweep", "--device", "cuda:-1"], "unknown device 'cuda:-1'"),
    (["sweep", "--device", "cpu:1"], "device 'cpu:1': there is one cpu device and it takes no "
                                     "index; use 'cpu'"),
    (["sweep", "--l2-lambdas", "1e39"], "lam must be at most 1e+06, got 1e+39"),
    (["sweep", "--l2-lambdas", "none", "1e-3"], "--l2-lambdas none means no runs"),
    (["sweep", "--seed", str(2**64)], "seed must be an integer in 0..4294967295, got "
                                      "18446744073709551616"),
    (["sweep", "--seed", str(2**32)], "seed must be an integer in 0..4294967295"),
    (["reproduce", "fig2", "--seeds", "1000000000000"], "--seeds: expected an integer in "
                                                        "1..1000, got 1000000000000"),
    (["sweep", "--ray", "--cpus-per-run", "inf"], "--cpus-per-run one > 0, got None and inf"),
    (["sweep", "--ray", "--gpus-per-run", "nan"], "--gpus-per-run must be a finite number"),
    (["reproduce", "fig2", "--epoch-s", "3"], "unrecognized arguments: --epoch-s 3 (see "
                                             "psp-lite reproduce --help)"),
])
def test_cli_bad_values_are_one_line_before_anything_runs(nothing_runs, capsys, argv, message):
    line = cli_error([*argv, "--dataset", "synthetic-mnist"] if argv[0] == "sweep" else argv,
                     capsys)
    assert message in line


@pytest.mark.parametrize("out", ["/etc/passwd", "/dev/null/x", "/proc/psp-lite-out"])
def test_cli_sweep_checks_out_before_training(nothing_runs, capsys, out, monkeypatch):
    monkeypatch.setattr(cli_commands, "sweep", lambda *a, **k: pytest.fail("trained"))
    line = cli_error(["sweep", "--dataset", "synthetic-mnist", "--out", out], capsys)
    assert f"cannot write into {out}" in line and "--out" in line


def test_lr_and_lambda_have_upper_bounds():
    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0, 1e\+06\], got 1e\+3"):
        RunConfig(**{**SMALL, "lr": 1e308})
    with pytest.raises(ValueError, match="lam must be at most 1e\\+06"):
        RunConfig(**{**SMALL, "regularizer": "psp", "lam": 1e39})


def test_cpu_0_is_the_cpu_under_one_cache_key():
    assert RunConfig(**{**SMALL, "device": "cpu:0"}) == RunConfig(**SMALL)


@pytest.fixture
def compare_seen(monkeypatch, tmp_path, nothing_runs):
    """What `psp-lite reproduce` hands to `experiments.compare` (nothing trains)."""
    seen = {}

    def spy(dataset, regularizers, **kwargs):
        seen.update(kwargs, dataset=dataset)
        raise KeyboardInterrupt
    monkeypatch.setattr(psp_lite.experiments, "compare", spy)
    return seen


def test_cli_quick_honours_seeds(compare_seen, capsys):
    assert cli.main(["reproduce", "table1", "--quick", "--seeds", "3", "--dataset",
                     "synthetic-mnist", "--device", "cpu", "--no-progress"]) == 130
    assert compare_seen["seeds"] == (0, 1, 2)


def test_cli_sweep_takes_none_for_no_l2_and_names_its_device(nothing_runs, capsys, monkeypatch):
    seen = {}

    def spy(dataset, psp, l2, **kwargs):
        seen.update(psp=psp, l2=l2)
        raise KeyboardInterrupt
    monkeypatch.setattr(cli_commands, "sweep", spy)
    assert cli.main(["sweep", "--dataset", "synthetic-mnist", "--psp-lambdas", "1e-3",
                     "--l2-lambdas", "none", "--device", "cpu"]) == 130
    assert seen == {"psp": [1e-3], "l2": []}
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("psp-lite sweep: synthetic-mnist, 2 runs of 5 epoch(s), seed 0, "
                            "on cpu (")
