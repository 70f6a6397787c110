"""The suite's own rule for missing requirements: skip with the reason elsewhere, fail in CI."""

from __future__ import annotations

import pytest
from conftest import GET_FASHION_MNIST, in_ci, missing_requirement


@pytest.mark.parametrize(("value", "expected"), [
    ("true", True), ("TRUE", True), ("1", True), ("yes", True),
    ("", False), ("false", False), ("0", False), (None, False)])
def test_in_ci_reads_the_ci_variable(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_a_missing_requirement_skips_with_the_reason_and_the_way_to_get_it(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        missing_requirement("Fashion-MNIST is not on this machine", GET_FASHION_MNIST)
    assert str(info.value) == ("Fashion-MNIST is not on this machine; get it with `apt-get install "
                               "dataset-fashion-mnist` (Debian/Ubuntu), or put its four idx files "
                               "in $PSP_LITE_DATA/FashionMNIST/raw/ (README, Data)")


def test_a_missing_requirement_fails_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as info:
        missing_requirement("no browser", "install one")
    assert str(info.value) == ("no browser (CI=true: CI runs every test, so this is a failure, "
                               "not a skip); install one")
