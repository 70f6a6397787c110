"""Small promises the layers keep: the GPU index asked for is the one trained on, `reproduce all
--ray` reaches Ray, checks leave the model and the global random state as they were, and every
loader takes the data folder."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

import psp_lite.analytic.checks
import psp_lite.experiments.comparison
import psp_lite.experiments.full_length
import psp_lite.experiments.lambda_sweep
import psp_lite.runners.local
import psp_lite.training.batched
from psp_lite import cli, experiments, teaching
from psp_lite.analytic import finite_difference
from psp_lite.cli import commands as cli_commands
from psp_lite.cli import options as cli_options
from psp_lite.runners import ray_cluster
from psp_lite.training import RunHistory, rebuild, train_many
from psp_lite.training.config import RunConfig, paper_config

SMALL = dict(dataset="synthetic-mnist", epochs=1, train_subset=100, test_subset=50)


class Stop(Exception):
    """Raised by a spy once it has seen what it came for."""


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")


@pytest.fixture
def configs_seen(monkeypatch):
    """The configs (and runner) that reach `run_configs` from the experiments; nothing trains."""
    seen: dict = {}

    def spy(configs, *, runner="local", **kwargs):
        seen["configs"], seen["runner"] = list(configs), runner
        raise Stop
    for module in (psp_lite.experiments.comparison, psp_lite.experiments.lambda_sweep,
                   psp_lite.experiments.full_length):
        monkeypatch.setattr(module, "run_configs", spy)
    return seen


def test_compare_and_sweep_keep_the_gpu_index(two_gpus, configs_seen, isolated_cache):
    with pytest.raises(Stop):
        experiments.compare("synthetic-mnist", device="cuda:1", epochs=1, progress=False)
    assert {c.device for c in configs_seen["configs"]} == {"cuda:1"}
    with pytest.raises(Stop):
        experiments.sweep("synthetic-mnist", (1e-3,), (), epochs=1, train_subset=100,
                          test_subset=50, device="cuda:1", progress=False)
    assert {c.device for c in configs_seen["configs"]} == {"cuda:1"}


def test_reproduce_device_cuda_1_trains_on_cuda_1(two_gpus, configs_seen, isolated_cache,
                                                  tmp_path):
    with pytest.raises(Stop):
        cli.main(["reproduce", "fig2", "--dataset", "synthetic-mnist", "--epochs", "1",
                  "--device", "cuda:1", "--out", str(tmp_path / "out"), "--no-progress"])
    assert {c.device for c in configs_seen["configs"]} == {"cuda:1"}


def test_reproduce_all_with_ray_goes_through_the_ray_runner(configs_seen, isolated_cache,
                                                             tmp_path, monkeypatch):
    monkeypatch.setattr(cli_options, "import_ray", lambda: None)
    with pytest.raises(Stop):
        cli.main(["reproduce", "all", "--smoke", "--ray", "--gpus-per-run", "0.5",
                  "--out", str(tmp_path / "pack"), "--no-progress"])
    runner = configs_seen["runner"]
    assert runner.kind == "ray" and runner.resources == {"num_gpus": 0.5}
    assert {c.device for c in configs_seen["configs"]} == {"auto"}  # resolved by Ray's workers


# ----------------------------------------------------------------------------- Ray requests


def node(cpus: float, gpus: float = 0, alive: bool = True) -> dict:
    return {"Alive": alive, "Resources": {"CPU": cpus, **({"GPU": gpus} if gpus else {})}}


@pytest.mark.parametrize("options, message", [
    (dict(num_cpus=1, num_gpus=0.5), r"1 CPUs and 0.5 GPUs, but no node .*2 CPUs, 0 GPUs"),
    (dict(num_cpus=64, num_gpus=0), r"64 CPUs and 0 GPUs, but no node"),
    (dict(num_cpus=1, num_gpus=math.nan), "use a finite number >= 0"),
    (dict(num_cpus=math.inf), "use a finite number >= 0"),
    (dict(num_cpus=1, num_gpus=1.5), "fractions only below 1"),
])
def test_ray_requests_no_node_can_meet_are_refused_naming_the_nodes(options, message):
    with pytest.raises(ValueError, match=message):
        ray_cluster.check_fits([node(2), node(8, 4, alive=False)], options)


def test_ray_requests_that_fit_one_node_pass():
    ray_cluster.check_fits([node(2), node(8, 1)], dict(num_cpus=4, num_gpus=0.5))


def test_ray_custom_resources_no_node_has_are_refused_naming_them():
    """A custom resource (`resources={"big": 1}`) that no live node has would hang Ray forever."""
    big = {"Alive": True, "Resources": {"CPU": 2, "big": 1}}
    ray_cluster.check_fits([node(8), big], dict(num_cpus=2, resources={"big": 1}))
    with pytest.raises(ValueError, match=r"4 CPUs and 0 GPUs, 1 big, but no node .*8 CPUs, 0 "
                                         r"GPUs, 0 big; 2 CPUs, 0 GPUs, 1 big.*custom resource"):
        ray_cluster.check_fits([node(8), big], dict(num_cpus=4, resources={"big": 1}))
    with pytest.raises(ValueError, match="1 huge, but no node"):
        ray_cluster.check_fits([node(8), big], dict(resources={"huge": 1}))


def test_ray_task_options_are_checked_against_the_cluster():
    class FakeRay:
        def cluster_resources(self):
            return {"CPU": 2.0}

        def nodes(self):
            return [node(2)]

    with pytest.raises(ValueError, match="no node of the Ray cluster"):
        ray_cluster._task_options(FakeRay(), {"num_gpus": 0.5}, [RunConfig(**SMALL)])


# ----------------------------------------------------------------------------- state kept


def float64_mlp() -> tuple[torch.nn.Module, torch.Tensor]:
    net = teaching.mlp((4, 3, 2), "tanh", seed=0, dtype=torch.float64)
    return net, torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def test_finite_difference_restores_the_parameter_when_the_forward_pass_raises(monkeypatch):
    net, x = float64_mlp()
    before = net[0].weight.detach().clone()
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("forward failed")

    monkeypatch.setattr(psp_lite.analytic.checks, "forward_record", failing)
    with pytest.raises(RuntimeError, match="forward failed"):
        finite_difference(net, x, 1.0, "0.weight", (0, 0))
    assert calls and torch.equal(net[0].weight.detach(), before)


def test_finite_difference_refuses_float32():
    net, x = float64_mlp()
    with pytest.raises(ValueError, match="needs float64.*model.double"):
        finite_difference(net.float(), x.float(), 1.0, "0.weight", (0, 0))


def test_toy_networks_leave_the_global_random_state_alone():
    state = torch.random.get_rng_state()
    a = teaching.mlp((4, 8, 2), "tanh", seed=3)
    teaching.weight_decay_cases(1e-2, 64)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = teaching.mlp((4, 8, 2), "tanh", seed=3)
    assert torch.equal(a[0].weight, b[0].weight)  # still seeded


def test_train_many_takes_the_data_folder(monkeypatch, tmp_path):
    seen = {}

    def spy(name, root=None, **kwargs):
        seen["root"] = root
        raise Stop
    monkeypatch.setattr(psp_lite.training.batched, "load_dataset", spy)
    with pytest.raises(Stop):
        train_many([RunConfig(**SMALL, device="cpu"), RunConfig(**SMALL, device="cpu", seed=1)],
                   data_dir=tmp_path, progress=False)
    assert seen["root"] == tmp_path


def test_rebuild_without_the_weights_asked_for_is_one_clear_value_error():
    config = RunConfig(**SMALL, device="cpu")
    with pytest.raises(ValueError, match="kept no weights"):
        rebuild(RunHistory(config))
    with pytest.raises(ValueError, match=r"at epoch 3: weights were kept at epochs \[1\] only"):
        rebuild(RunHistory(config, weights={1: {}}), 3)


# ----------------------------------------------------------------------------- data


def test_gz_files_in_the_given_roots_raw_folder_are_used(debian_fashion_mnist, tmp_path,
                                                          monkeypatch):
    from psp_lite.data import load_dataset

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("PSP_LITE_DATA", raising=False)
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in debian_fashion_mnist.glob("*.gz"):
        shutil.copy(gz, raw)
    data = load_dataset("fashion-mnist", tmp_path / "root", train_subset=10, test_subset=10,
                        download=False)
    assert data.note.startswith(f"Fashion-MNIST from {tmp_path / 'root'} (given root)")


def test_the_protocol_note_states_the_training_images():
    groups = {r: [RunHistory(paper_config("fashion-mnist", r, epochs=20, train_subset=2000))]
              for r in ("none", "psp")}
    assert experiments.comparison.protocol_note(groups) == (
        "lenet5 on Fashion-MNIST: 2,000 of 60,000 training images, 10,000 test images, "
        "20 epochs, 1 seed per regularizer")


def test_the_data_line_says_which_runs_came_from_the_cache():
    config = paper_config("fashion-mnist", "none", epochs=1)
    old = RunHistory(config, data_note="Fashion-MNIST from /old (given root)")
    new = RunHistory(config, data_note="Fashion-MNIST from /new (given root); subset 10 train")
    choice = experiments.DatasetChoice("fashion-mnist", "fashion-mnist",
                                       "data: Fashion-MNIST from /new (given root)")
    assert cli_commands.data_line({"none": [new]}, choice) == (
        "data: Fashion-MNIST from /new (given root)")
    assert cli_commands.data_line({"none": [old, new]}, choice) == (
        "data: Fashion-MNIST from /new (given root); 1 of the 2 runs came from the cache, "
        "trained on the same images from Fashion-MNIST from /old (given root)")


def test_with_ray_the_device_is_the_workers_not_checked_on_the_driver(monkeypatch):
    from psp_lite.runners.spec import Runner

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli_commands.device_for("cuda:1", Runner("ray")) == "cuda:1"
    assert cli_commands.device_for(None, Runner("ray")) == "auto"
    with pytest.raises(ValueError, match="CUDA is not available"):
        cli_commands.device_for("cuda:1", Runner())
