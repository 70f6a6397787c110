"""The storage layer: finished histories on disk, written atomically and read back validated.

* `cache`: one file pair per run, keyed by its config, its data and the training code.
* `packs`: results packs, full-length histories with a manifest (`psp-lite reproduce all`).
"""

from psp_lite.store.cache import CacheNotWritableError, cache_dir
from psp_lite.store.packs import Pack, PackError, default_path, load_pack, write_pack

__all__ = ["CacheNotWritableError", "Pack", "PackError", "cache_dir", "default_path", "load_pack",
           "write_pack"]
