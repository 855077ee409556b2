"""Prometheus metrics declared once, as class attributes, and registered per instance on a given registry.

::

    class RelayMetrics(MetricSet):
        published = counter("outbox_relay_published", "Outbox rows published to Kafka")
        blocked_key = gauge("outbox_relay_blocked_key", "1 per blocked key", ["aggregate_id"])

    metrics = RelayMetrics(registry)  # registers every declared metric on registry, in declaration order
    metrics.published.inc()  # a Counter

Each instance of a set owns its metrics (one registry each, so tests can build as many as they like).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar, overload

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)


class Declared(Generic[M]):
    """One metric of a ``MetricSet``, built on the set's registry by ``MetricSet.__init__``."""

    def __init__(self, build: Callable[[CollectorRegistry], M]) -> None:
        self._build = build
        self._attribute = ""

    def __set_name__(self, owner: type, attribute: str) -> None:
        self._attribute = attribute

    def register(self, owner: object, registry: CollectorRegistry) -> None:
        # An instance attribute of the same name: it shadows this (non-data) descriptor from now on.
        vars(owner)[self._attribute] = self._build(registry)

    @overload
    def __get__(self, owner: None, kind: type) -> Declared[M]: ...
    @overload
    def __get__(self, owner: object, kind: type) -> M: ...
    def __get__(self, owner: object | None, kind: type) -> Declared[M] | M:
        if owner is None:
            return self
        raise AttributeError(f"metric {self._attribute!r} read before MetricSet.__init__ registered it")


class MetricSet:
    """Registers the metrics its class declares (``counter``, ``gauge``, ``histogram``) on the given registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        declared: dict[str, Declared[Any]] = {}
        for kind in reversed(type(self).__mro__):
            declared |= {name: value for name, value in vars(kind).items() if isinstance(value, Declared)}
        for metric in declared.values():
            metric.register(self, registry)


def counter(name: str, help_: str, labels: Sequence[str] = ()) -> Declared[Counter]:
    return Declared(lambda registry: Counter(name, help_, labels, registry=registry))


def gauge(name: str, help_: str, labels: Sequence[str] = ()) -> Declared[Gauge]:
    return Declared(lambda registry: Gauge(name, help_, labels, registry=registry))


def histogram(
    name: str, help_: str, labels: Sequence[str] = (), *, buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS
) -> Declared[Histogram]:
    return Declared(lambda registry: Histogram(name, help_, labels, registry=registry, buckets=buckets))
