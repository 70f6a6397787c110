"""The data layer: MNIST, Fashion-MNIST and CIFAR-10 (and two synthetic stand-ins) as tensors on
the training device, found offline first, and batches sliced from them by index.

* `catalog`: one `DatasetInfo` per dataset (sizes, image shape, normalization, titles).
* `files`: finding and decoding the real files (given root, $PSP_LITE_DATA, system folders).
* `tensors`: `load_dataset` -> `TensorData`, subsets, the synthetic stand-ins.
* `batches`: index batches on the data's device, CIFAR augmentation.
"""

from psp_lite.data.batches import batches
from psp_lite.data.catalog import (
    CATALOG,
    DATASETS,
    SYNTHETIC_DEFAULT_SIZES,
    DatasetInfo,
    canonical_dataset,
    dataset_info,
)
from psp_lite.data.files import DatasetNotFoundError, default_data_dir
from psp_lite.data.tensors import SUBSET_SEED, TensorData, clear_cache, load_dataset

__all__ = ["CATALOG", "DATASETS", "SUBSET_SEED", "SYNTHETIC_DEFAULT_SIZES", "DatasetInfo",
           "DatasetNotFoundError", "TensorData", "batches", "canonical_dataset", "clear_cache",
           "dataset_info", "default_data_dir", "load_dataset"]
