"""The demo's reaction-time measure: the first point under the threshold."""

from demo.reaction import first_below


def test_first_below_is_the_first_point_under_the_threshold() -> None:
    points = [(10.0, 0.97), (10.5, 0.86), (11.0, 0.849), (11.5, 0.9), (12.0, 0.5)]
    assert first_below(points, 0.85) == 11.0


def test_first_below_is_none_when_never_under() -> None:
    assert first_below([(1.0, 0.85), (2.0, 0.9)], 0.85) is None
    assert first_below([], 0.85) is None
