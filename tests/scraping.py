"""Reading /metrics in tests: a scrape as {(name, labels): value}."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SECRET


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape, keyed by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get(f"/metrics?token={SECRET}")
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/plain"
    return parse(response.get_data(as_text=True))


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)
