"""Numbers printed in the paper and in the authors' own result notebook, for side-by-side tables.

Test error in percent. Keys: (dataset, model, regularizer).
"""

from __future__ import annotations

#: As printed in the paper (Sec. 4.1 text, Table 1, Table 2). CIFAR-10's "baseline" is l2 5e-4.
PAPER_TEST_ERROR: dict[tuple[str, str, str], float] = {
    ("mnist", "lenet5", "none"): 0.71,
    ("mnist", "lenet5", "l2"): 0.64,
    ("mnist", "lenet5", "psp"): 0.50,
    ("fashion-mnist", "lenet5", "l2"): 8.9,
    ("fashion-mnist", "lenet5", "psp"): 8.0,
    ("cifar10", "resnet18", "l2"): 5.1,
    ("cifar10", "resnet18", "psp"): 4.6,
    ("cifar10", "mobilenetv2", "l2"): 7.0,
    ("cifar10", "mobilenetv2", "psp"): 6.4,
    ("cifar10", "allcnnc", "l2"): 9.1,
    ("cifar10", "allcnnc", "psp"): 8.6,
}

#: The paper's lambda for LeNet5 on MNIST and Fashion-MNIST (Sec. 4.1): PSP, and l2 weight decay.
PAPER_LAMBDA: dict[str, float] = {"psp": 1e-3, "l2": 1e-4}

#: The authors' published notebook: mean test error over epochs 31..end across 10 seeds.
AUTHORS_NOTEBOOK_TEST_ERROR: dict[tuple[str, str, str], float] = {
    ("mnist", "lenet5", "psp"): 0.550,
    ("mnist", "lenet5", "l2"): 0.743,
    ("mnist", "lenet5", "none"): 0.726,
    ("fashion-mnist", "lenet5", "psp"): 7.88,
    ("fashion-mnist", "lenet5", "l2"): 8.28,
    ("fashion-mnist", "lenet5", "none"): 8.13,
}


def paper_error(dataset: str, model: str, regularizer: str) -> float | None:
    """The paper's test error (%) for this setting, or None where the paper gives none."""
    return PAPER_TEST_ERROR.get((dataset, model, regularizer))


def authors_notebook_error(dataset: str, model: str, regularizer: str) -> float | None:
    return AUTHORS_NOTEBOOK_TEST_ERROR.get((dataset, model, regularizer))
