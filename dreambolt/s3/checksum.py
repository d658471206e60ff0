"""Full-object checksums, to check what arrived against what S3 promised.

CRCs are computed per range while bytes stream in and combined in order at the end, so concurrent
out-of-order ranges need no second pass; SHA digests need the bytes in order.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Iterable, Mapping

from awscrt import checksums as _crt

__all__ = ["Checksum", "Digest", "checksum_pair", "from_response"]

_Bytes = bytes | bytearray | memoryview
# algorithm -> (crc(data, running), combine(crc1, crc2, len2), width in bytes)
_CRCS: dict[str, tuple[Callable[[_Bytes, int], int], Callable[[int, int, int], int], int]] = {
    "CRC32": (zlib.crc32, _crt.combine_crc32, 4),
    "CRC32C": (_crt.crc32c, _crt.combine_crc32c, 4),
    "CRC64NVME": (_crt.crc64nvme, _crt.combine_crc64nvme, 8),
}
_HASHES = ("SHA256", "SHA1")


class Checksum:
    """The full-object checksum S3 promised, and the means to check bytes against it."""

    def __init__(self, algorithm: str, expected: str) -> None:
        self.algorithm = algorithm
        self.expected = expected

    @classmethod
    def of(cls, pair: tuple[str, str] | None) -> Checksum | None:
        """From an (algorithm, base64 value) pair as kept in `ObjectInfo.checksum`."""
        return cls(*pair) if pair is not None else None

    @property
    def is_crc(self) -> bool:
        """CRCs can be computed per range and combined; hashes need one in-order pass."""
        return self.algorithm in _CRCS

    def crc(self, data: bytes | bytearray | memoryview, running: int = 0) -> int:
        """Extend a running CRC by `data` (only for CRC algorithms)."""
        return _CRCS[self.algorithm][0](data, running)

    def matches_parts(self, parts: Iterable[tuple[int, int]]) -> bool:
        """Check per-range (crc, length) pairs, given in object order."""
        _, combine, width = _CRCS[self.algorithm]
        total: int | None = None
        for crc, length in parts:
            total = crc if total is None else combine(total, crc, length)
        return self._encode((total or 0).to_bytes(width, "big"))

    def matches_stream(self, chunks: Iterable[bytes | bytearray | memoryview]) -> bool:
        """Check the object's bytes, given in order."""
        digest = self.digest()
        for chunk in chunks:
            digest.update(chunk)
        return digest.matches()

    def digest(self) -> Digest:
        """A running digest to feed the object's bytes in order."""
        return Digest(self)

    def _encode(self, digest: bytes) -> bool:
        return base64.b64encode(digest).decode() == self.expected


class Digest:
    """A running checksum over bytes fed in order."""

    def __init__(self, checksum: Checksum) -> None:
        self._checksum = checksum
        self._crc = 0
        self._hash = None if checksum.is_crc else hashlib.new(checksum.algorithm.lower())

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Feed the next bytes of the object."""
        if self._hash is None:
            self._crc = self._checksum.crc(data, self._crc)
        else:
            self._hash.update(data)

    def matches(self) -> bool:
        """Tell whether the bytes fed so far have the promised checksum."""
        if self._hash is None:
            width = _CRCS[self._checksum.algorithm][2]
            return self._checksum._encode(self._crc.to_bytes(width, "big"))
        return self._checksum._encode(self._hash.digest())


def from_response(response: Mapping[str, object]) -> Checksum | None:
    """The full-object checksum a HEAD response promises, if there is one we can check."""
    return Checksum.of(checksum_pair(response))


def checksum_pair(response: Mapping[str, object]) -> tuple[str, str] | None:
    """(algorithm, base64 value) of the full-object checksum in a HEAD/GET response, if any.

    Composite checksums of multipart uploads (`…-N`, or ChecksumType COMPOSITE) are checksums of
    part checksums, not of the bytes, so they are not checked.
    """
    if response.get("ChecksumType") == "COMPOSITE":
        return None
    for algorithm in (*_CRCS, *_HASHES):
        value = response.get(f"Checksum{algorithm}")
        if isinstance(value, str) and "-" not in value:
            return algorithm, value
    return None
