"""Which request budget the engine's transport draws from, by setting and store backend."""

from __future__ import annotations

import pytest

from tenanttls.config import Settings, load_settings
from tenanttls.errors import ConfigurationError
from tenanttls.migration.wiring import build_request_budget
from tenanttls.store.budget import StoreTokenBucket
from tenanttls.transport.policy import TransportPolicy


@pytest.mark.parametrize("choice", ["auto", "store", "process"])
def test_budget_chosen_by_setting(store, store_backend, choice):
    budget = build_request_budget(Settings(request_budget=choice), store, TransportPolicy(requests_per_second=7.0, burst=3))

    shared = choice == "store" or (choice == "auto" and store_backend == "postgresql")
    assert isinstance(budget, StoreTokenBucket) is shared
    assert budget is None or (budget.rate, budget.burst) == (7.0, 3)


def test_invalid_budget_setting():
    with pytest.raises(ConfigurationError) as error:
        load_settings(environ={"TENANTTLS_REQUEST_BUDGET": "cluster"})

    assert "'cluster'" in str(error.value)


def test_engine_bucket_by_backend(engine_factory, store_backend):
    harness = engine_factory([])

    bucket = harness.context.exchange.transport.bucket

    assert isinstance(bucket, StoreTokenBucket) is (store_backend == "postgresql")
    assert harness.context.graph.transport.bucket is bucket
