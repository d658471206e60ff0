"""The public API is what dreambolt/__init__.py re-exports; keep __all__ honest and sorted."""

from __future__ import annotations

import dreambolt
from dreambolt import errors


def test_all_is_sorted_and_complete() -> None:
    names = [n for n in dreambolt.__all__ if n != "__version__"]
    assert names == sorted(names)
    assert all(hasattr(dreambolt, name) for name in dreambolt.__all__)
    public = {n for n in vars(dreambolt) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(dreambolt.__all__)


def test_contract_names_exist() -> None:
    for name in ("S3Client", "Ingester", "parse_s3_uri", "S3Uri", "IngestReport", "FileResult"):
        assert name in dreambolt.__all__
    assert dreambolt.S3Client.parse_s3_uri is dreambolt.parse_s3_uri


def test_error_tree_matches_the_contract() -> None:
    base = errors.DreamBoltError
    assert issubclass(errors.InvalidS3UriError, base) and issubclass(
        errors.InvalidS3UriError, ValueError
    )
    for name in (
        "S3AuthError",
        "S3NotFoundError",
        "S3RateLimitError",
        "S3ObjectChangedError",
        "S3IntegrityError",
        "S3GenericError",
    ):
        assert issubclass(getattr(errors, name), errors.S3BaseError)
    for cls in (errors.S3BaseError, errors.FormatError, errors.EmbeddingError, errors.SinkError):
        assert issubclass(cls, base)
