"""Reading `.npz` archives without trusting them (issue 18: an 8.5 MB weights.npz whose headers
claimed huge arrays took RSS from 517 to 2,566 MB under `np.load`).

`Archive` lists each member's dtype and shape from its `.npy` header alone, and checks that the
member's stated size is exactly header + data, so decompressing it can produce no more than the
header says. A caller checks every header against what it expects, then reads only those arrays
(never with pickle). Any damage is an `ArchiveError`; bugs are not caught here.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib import format as npy

#: What a damaged archive can raise from zipfile / zlib / numpy's header parser.
DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, struct.error, ValueError,
          NotImplementedError, UnicodeDecodeError, KeyError)


class ArchiveError(ValueError):
    """An `.npz` archive that is not a well-formed set of plain arrays."""


@dataclass(frozen=True)
class Header:
    """One member's `.npy` header: what the array claims to be before any of it is read."""

    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


def _header(f: IO[bytes]) -> tuple[Header, int]:
    version = npy.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = npy.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = npy.read_array_header_2_0(f)
    else:
        raise ArchiveError(f".npy version {version} is not read")
    if fortran or dtype.hasobject or dtype.fields is not None:
        raise ArchiveError(f"{dtype} (fortran={fortran}) is not a plain array")
    return Header(dtype, tuple(int(n) for n in shape)), f.tell()


class Archive:
    """An open `.npz` file: `headers` (name -> Header, read first) and `read(name)`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
        except DAMAGE as error:
            raise ArchiveError(f"not a readable .npz archive ({error})") from None
        self.headers: dict[str, Header] = {}
        try:
            for info in self._zip.infolist():
                if not info.filename.endswith(".npy"):
                    raise ArchiveError(f"member {info.filename!r} is not a .npy array")
                with self._zip.open(info) as f:
                    header, offset = _header(f)
                expected = offset + header.size * header.dtype.itemsize
                if info.file_size != expected:
                    raise ArchiveError(f"member {info.filename!r} holds {info.file_size} bytes, "
                                       f"its header says {expected}")
                self.headers[info.filename[:-4]] = header
        except DAMAGE as error:
            self.close()
            raise ArchiveError(f"not a readable .npz archive ({error})") from None
        except ArchiveError:
            self.close()
            raise

    def read(self, name: str) -> np.ndarray:
        """The array `name` (whose header the caller has checked)."""
        try:
            with self._zip.open(f"{name}.npy") as f:
                return npy.read_array(f, allow_pickle=False)
        except DAMAGE as error:
            raise ArchiveError(f"array {name!r} is not readable ({error})") from None

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
