import pytest

from animate_anyone.pipelines.context import frame_coverage, uniform_windows


def test_reference_windows_wrap_around():
    # architecture.md §10 (verified there against the reference code)
    assert uniform_windows(12, 8, 4) == [list(range(8)), list(range(4, 12)), [8, 9, 10, 11, 0, 1, 2, 3]]
    windows = uniform_windows(64, 24, 4)
    assert [w[0] for w in windows] == [0, 20, 40, 60]
    assert windows[-1] == [60, 61, 62, 63] + list(range(20))


def test_windows_without_wrap_end_on_last_frame():
    windows = uniform_windows(64, 24, 4, wrap_around=False)
    assert windows[0] == list(range(24)) and windows[-1] == list(range(40, 64))
    assert all(len(w) == 24 and w == sorted(w) for w in windows)
    assert min(frame_coverage(windows, 64)) >= 1


@pytest.mark.parametrize("wrap", [True, False])
@pytest.mark.parametrize("n", [1, 5, 24, 25, 47, 100])
def test_every_frame_covered_and_overlap_kept(n, wrap):
    windows = uniform_windows(n, 24, 4, wrap_around=wrap)
    assert all(len(w) == min(n, 24) for w in windows)
    assert all(len(set(w)) == len(w) for w in windows)
    assert min(frame_coverage(windows, n)) >= 1
    for a, b in zip(windows, windows[1:]):
        assert len(set(a) & set(b)) >= 4


def test_short_video_is_one_window():
    assert uniform_windows(10, 24, 4) == [list(range(10))]


@pytest.mark.parametrize("args", [(0, 24, 4), (10, 0, 0), (10, 8, 8), (10, 8, -1)])
def test_bad_arguments(args):
    with pytest.raises(ValueError):
        uniform_windows(*args)
