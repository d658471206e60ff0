"""Pure units: the botocore session setup (model loader, timestamps)."""

from __future__ import annotations

from datetime import UTC, datetime

from botocore.loaders import create_loader

from dreambolt.s3.session import new_session, parse_timestamp


def test_models_load_the_same_as_botocores_own_loader() -> None:
    ours = new_session().get_component("data_loader")
    theirs = create_loader()
    for kind in ("service-2", "endpoint-rule-set-1", "paginators-1"):
        mine = ours.load_service_model("s3", kind)
        assert mine == theirs.load_service_model("s3", kind)
        assert type(mine) is dict  # plain dicts: the point of the loader
    assert ours.load_data("endpoints") == theirs.load_data("endpoints")


def test_timestamps_in_both_s3_forms() -> None:
    when = datetime(2024, 3, 19, 21, 39, 31, tzinfo=UTC)
    assert parse_timestamp("Tue, 19 Mar 2024 21:39:31 GMT") == when
    assert parse_timestamp("2024-03-19T21:39:31.000Z") == when
    assert parse_timestamp("2024-03-19T21:39:31") == when  # unzoned: UTC
