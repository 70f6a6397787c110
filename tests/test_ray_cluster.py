"""Ray across two nodes (`ray.cluster_utils.Cluster`: a head and a second node with one CPU each,
both on this machine): runs sent to the second node train there, come back equal to the same
runs trained here and land in the driver's cache; runs sent to the cluster all arrive; a run
that no single node can hold (two CPUs, or two of the second node's own resource) is refused
before anything is sent."""

from __future__ import annotations

import dataclasses
import logging
import os

import pytest
import torch

from psp_lite.data import load_dataset
from psp_lite.runners.local import run_configs
from psp_lite.store import cache
from psp_lite.training.config import RunConfig
from psp_lite.training.history import RunHistory
from psp_lite.training.loop import train

pytestmark = pytest.mark.ray

BASE = RunConfig(dataset="synthetic-mnist", regularizer="psp", lam=1e-3, epochs=1,
                 train_subset=200, test_subset=100, device="cpu")
#: The second node's own resource: a task that asks for it can only run there.
SECOND = "second_node"


@pytest.fixture(scope="module")
def two_nodes():
    """A two-node Ray cluster for this module; skipped without Ray, except in CI."""
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("Ray is not installed in CI; .ci/run must install the cluster extra")
        pytest.skip("needs Ray, the cluster extra: pip install -e '.[cluster]'")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' one thread per task, so float sums match exactly
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1, resources={SECOND: 1})
    ray.init(address=cluster.address, logging_level=logging.WARNING)
    cluster.wait_for_nodes()
    yield ray
    ray.shutdown()
    cluster.shutdown()
    torch.set_num_threads(threads)


def cached(config: RunConfig) -> RunHistory | None:
    data = load_dataset(config.dataset, device="cpu", train_subset=config.train_subset,
                        test_subset=config.test_subset)
    return cache.load(config, data.fingerprint)


def test_runs_on_the_second_node_equal_local_runs_and_reach_the_drivers_cache(
        two_nodes, isolated_cache):
    assert len([n for n in two_nodes.nodes() if n["Alive"]]) == 2
    configs = [dataclasses.replace(BASE, seed=s) for s in (0, 1)]
    outcomes = run_configs(configs, runner="ray", progress=False,
                           resources={"resources": {SECOND: 1}})
    for config, outcome in zip(configs, outcomes, strict=True):
        assert isinstance(outcome, RunHistory) and outcome.config == config
        here = train(config, load_dataset(config.dataset, device="cpu",
                                          train_subset=config.train_subset,
                                          test_subset=config.test_subset), progress=False)
        assert outcome.test_error == here.test_error and outcome.z2 == here.z2
        assert cached(config).test_error == outcome.test_error  # kept by the driver


def test_runs_sent_to_the_two_node_cluster_all_arrive_and_a_rerun_sends_none(
        two_nodes, isolated_cache, monkeypatch):
    configs = [dataclasses.replace(BASE, seed=s, lam=2e-3) for s in range(3)]
    outcomes = run_configs(configs, runner="ray", progress=False)
    assert all(isinstance(o, RunHistory) for o in outcomes)
    assert all(cached(c) is not None for c in configs)
    import psp_lite.runners.ray_cluster as ray_cluster

    sent = []
    monkeypatch.setattr(ray_cluster, "_submit", lambda *a: sent.append(a) or None)
    again = run_configs(configs, runner="ray", progress=False)
    assert sent == [] and [h.test_error for h in again] == [h.test_error for h in outcomes]


def test_a_run_no_single_node_can_hold_is_refused_naming_both_nodes(two_nodes, isolated_cache):
    """Two CPUs in all, but one per node: a run asking for two would wait forever."""
    with pytest.raises(ValueError, match=r"2 CPUs and 0 GPUs, but no node .*"
                                         r"1 CPUs, 0 GPUs; 1 CPUs, 0 GPUs"):
        run_configs([BASE], runner="ray", progress=False, resources={"num_cpus": 2})
    either_order = f"(1 {SECOND}; .*0|0 {SECOND}; .*1) {SECOND}"  # both nodes, by what they have
    with pytest.raises(ValueError, match=f"2 {SECOND}, but no node .*{either_order}"):
        run_configs([BASE], runner="ray", progress=False, resources={"resources": {SECOND: 2}})
    assert cached(BASE) is None
