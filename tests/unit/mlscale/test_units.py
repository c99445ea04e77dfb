from __future__ import annotations

import pytest

from mlscale.units import (
    QuantityError,
    format_cpu,
    format_duration,
    parse_cpu,
    parse_cpu_usage,
    parse_duration,
    parse_memory,
    spark_memory,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("1.5h", 5400), ("2d", 172800), (45, 45)],
)
def test_durations_parse_to_seconds(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5 minutes", "m5", "", "1h-30m", "10"])
def test_bad_durations_say_what_is_allowed(text: str) -> None:
    with pytest.raises(QuantityError, match="90s"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "cores"), [("500m", 0.5), ("1.5", 1.5), ("2", 2.0), (2, 2.0), ("50m", 0.05)])
def test_cpu_quantities_parse_to_cores(text: str | int, cores: float) -> None:
    assert parse_cpu(text) == pytest.approx(cores)


@pytest.mark.parametrize("text", ["1.5m", "one", "-1", "1 core"])
def test_bad_cpu_quantities_are_refused(text: str) -> None:
    with pytest.raises(QuantityError, match="500m"):
        parse_cpu(text)


@pytest.mark.parametrize(
    ("text", "cores"), [("412000000n", 0.412), ("250u", 0.00025), ("730m", 0.73), ("1", 1.0), ("0", 0.0), (1.5, 1.5)]
)
def test_measured_cpu_usage_parses_to_cores(text: str | float, cores: float) -> None:
    assert parse_cpu_usage(text) == pytest.approx(cores)


@pytest.mark.parametrize("text", ["12k", "n", "-5n", ""])
def test_bad_measured_cpu_usage_is_refused(text: str) -> None:
    with pytest.raises(QuantityError, match="123456789n"):
        parse_cpu_usage(text)


@pytest.mark.parametrize(("cores", "text"), [(1.5, "1500m"), (2.0, "2"), (0.05, "50m")])
def test_cpu_formats_as_kubernetes_quantity(cores: float, text: str) -> None:
    assert format_cpu(cores) == text
    assert parse_cpu(format_cpu(cores)) == pytest.approx(cores)


@pytest.mark.parametrize(
    ("text", "size"),
    [("1Gi", 2**30), ("512Mi", 2**29), ("1G", 10**9), ("1e9", 10**9), (1024, 1024), ("128974848", 128974848)],
)
def test_memory_quantities_parse_to_bytes(text: str | int, size: int) -> None:
    assert parse_memory(text) == size


def test_memory_converts_for_spark() -> None:
    assert spark_memory("1Gi") == "1024m"


def test_durations_format_back() -> None:
    assert format_duration(5400) == "1h30m"
    assert format_duration(90) == "1m30s"
    assert parse_duration(format_duration(3725)) == 3725
