"""Pure units: full-object checksums, whole and combined from out-of-order ranges."""

from __future__ import annotations

import base64
import hashlib
import itertools
import zlib

import pytest
from awscrt import checksums

from dreambolt.s3.checksum import Checksum, checksum_pair, from_response

DATA = bytes(range(256)) * 1000 + b"tail"


def b64(number: int, width: int) -> str:
    return base64.b64encode(number.to_bytes(width, "big")).decode()


EXPECTED = {
    "CRC32": b64(zlib.crc32(DATA), 4),
    "CRC32C": b64(checksums.crc32c(DATA), 4),
    "CRC64NVME": b64(checksums.crc64nvme(DATA), 8),
    "SHA256": base64.b64encode(hashlib.sha256(DATA).digest()).decode(),
    "SHA1": base64.b64encode(hashlib.sha1(DATA).digest()).decode(),
}


@pytest.mark.parametrize("algorithm", sorted(EXPECTED))
def test_whole_and_ranged_checks_agree_and_can_fail(algorithm: str) -> None:
    good = Checksum(algorithm, EXPECTED[algorithm])
    assert good.matches_stream([DATA[:1000], DATA[1000:]])
    assert not good.matches_stream([DATA[:-1] + b"X"])
    if good.is_crc:
        cuts = [0, 7, 65536, 100_000, len(DATA)]
        parts = [(good.crc(DATA[a:b]), b - a) for a, b in itertools.pairwise(cuts)]
        assert good.matches_parts(parts)
        assert not good.matches_parts(parts[::-1])


def test_composite_and_missing_checksums_are_not_checked() -> None:
    assert checksum_pair({"ChecksumCRC32": "AAAAAA==-3"}) is None
    assert checksum_pair({"ChecksumCRC32": "AAAAAA==", "ChecksumType": "COMPOSITE"}) is None
    assert from_response({}) is None
    assert checksum_pair({"ChecksumSHA256": EXPECTED["SHA256"]}) == ("SHA256", EXPECTED["SHA256"])
