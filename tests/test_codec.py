"""The one history codec behind the cache and packs: its fields come from the dataclasses, so a
new field is stored or refused at import, never silently dropped (issue 17)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import field

import pytest

from psp_lite.store import codec
from psp_lite.training.config import RunConfig
from psp_lite.training.history import RunHistory

CONFIG = RunConfig(dataset="synthetic-mnist", epochs=2, device="cpu")


def full_history(cls=RunHistory, **extra) -> RunHistory:
    """A history with a distinct value in every field (so a dropped field shows)."""
    return cls(config=CONFIG, train_loss=[2.0, 1.5], test_loss=[2.1, 1.6],
               test_error=[80.0, 60.5], z2=[0.5, 0.4], seconds=[1.25, 1.5],
               z2_layers={"conv1": [0.3, 0.2], "output": [0.7, 0.6]}, device="cpu (test)",
               data_note="synthetic", **extra)


def test_the_record_holds_every_field_of_the_dataclass():
    names = {f.name for f in dataclasses.fields(RunHistory)}
    assert set(codec.RECORD_FIELDS) == names - {"config", "weights"}
    history = full_history()
    record = json.loads(json.dumps(codec.encode(history)))  # plain JSON
    assert set(record) == set(codec.RECORD_FIELDS)
    assert codec.decode(record, CONFIG) == history


def test_a_new_field_of_a_known_type_round_trips_with_no_codec_change():
    @dataclasses.dataclass
    class Longer(RunHistory):
        learning_rate: list[float] = field(default_factory=list)
        optimizer: str = ""

    history = full_history(Longer, learning_rate=[0.1, 0.01], optimizer="sgd")
    record = json.loads(json.dumps(codec.encode(history)))
    assert record["learning_rate"] == [0.1, 0.01] and record["optimizer"] == "sgd"
    assert codec.decode(record, CONFIG, cls=Longer) == history
    with pytest.raises(codec.InvalidRecord, match=r"missing \['learning_rate', 'optimizer'\]"):
        codec.decode(codec.encode(full_history()), CONFIG, cls=Longer)  # an old record


def test_a_new_field_of_an_unknown_type_is_refused_not_dropped():
    @dataclasses.dataclass
    class Odd(RunHistory):
        notes: set[str] = field(default_factory=set)

    with pytest.raises(TypeError, match=r"cannot store Odd.notes of type set\[str\]"):
        codec.kinds(Odd)


def test_every_config_field_round_trips_and_a_missing_one_is_refused():
    config = dataclasses.replace(CONFIG, lr_milestones=(1,), snapshot_epochs=(1,))
    stored = json.loads(json.dumps(codec.config_to_json(config)))
    assert set(stored) == {f.name for f in dataclasses.fields(RunConfig)}
    assert codec.config_from_json(stored) == config
    del stored["momentum"]  # would silently take the default
    with pytest.raises(codec.InvalidRecord, match=r"missing \['momentum'\]"):
        codec.config_from_json(stored)


def test_a_diverged_history_records_the_epochs_before():
    history = RunHistory(config=CONFIG, train_loss=[2.0], test_loss=[2.1], test_error=[80.0],
                         z2=[0.5], seconds=[1.0], z2_layers={"output": [0.7]}, diverged_at=2)
    assert codec.decode(codec.encode(history), CONFIG) == history
    first = RunHistory(config=CONFIG, diverged_at=1)  # nothing recorded
    assert codec.decode(codec.encode(first), CONFIG) == first


@pytest.mark.parametrize("field_, value", [("test_error", math.nan), ("test_error", -50.0),
                                            ("test_error", 250.0), ("test_loss", math.inf),
                                            ("train_loss", -1.0), ("seconds", math.nan)])
def test_damaged_numbers_are_refused_naming_the_field(field_, value):
    record = codec.encode(full_history())
    record[field_][1] = value
    with pytest.raises(codec.InvalidRecord, match=field_):
        codec.decode(record, CONFIG)


def test_parameter_sizes_come_from_the_model_without_allocating_it():
    sizes = codec.parameter_sizes("lenet5")
    assert sum(sizes.values()) > 400_000 and all(n > 0 for n in sizes.values())
    assert sum(codec.parameter_sizes("resnet18").values()) > 11_000_000  # on the meta device
