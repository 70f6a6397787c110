"""The storage layer: finished (or diverged) histories on disk, written atomically and read back
validated, with every archive's headers checked before any array is read.

* `codec`: the one `RunHistory` <-> JSON record codec, its fields from the dataclass.
* `cache`: one file per run, keyed by its config, its data and the training code.
* `packs`: results packs, full-length histories with a manifest (`psp-lite reproduce all`);
  `pack_reader` checks one on load.
* `atomic`: unique temp files renamed into place, folder locks, `StoreWriteError`;
  `archive`: `.npz` files read header first.
"""

from psp_lite.store.atomic import StoreWriteError
from psp_lite.store.cache import CacheNotWritableError, CacheWriteError, cache_dir
from psp_lite.store.packs import (
    Pack,
    PackError,
    PackWriteError,
    default_path,
    load_pack,
    write_pack,
)

__all__ = ["CacheNotWritableError", "CacheWriteError", "Pack", "PackError", "PackWriteError",
           "StoreWriteError", "cache_dir", "default_path", "load_pack", "write_pack"]
