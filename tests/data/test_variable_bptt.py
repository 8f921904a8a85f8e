"""Variable-length BPTT windows: contiguous, and drawn from the seed alone."""



import torch

from lstm_lm.data.batches import variable_bptt_windows


def test_variable_bptt_windows_cover_the_rows_contiguously():
    rows, columns, bptt, start = 1200, 3, 20, 0
    source = torch.arange(rows * columns).view(rows, columns)
    windows = list(variable_bptt_windows(source, bptt, start, seed=5))
    expected_row = start
    for row, inputs, targets in windows:
        assert row == expected_row  # no gap, no overlap
        assert torch.equal(inputs, source[row: row + len(inputs)])
        assert torch.equal(targets, inputs + columns)  # the next row: each input's next token
        expected_row += len(inputs)
    assert expected_row == rows - 1  # to the end: the last row is only a target
    lengths = [len(inputs) for _, inputs, _ in windows]
    assert all(5 <= length <= bptt + 40 for length in lengths[:-1])
    assert 1 <= lengths[-1] <= bptt + 40
    assert len(set(lengths)) > 5  # they vary...
    assert 15 < sum(lengths[:-1]) / len(lengths[:-1]) < 22  # ...around bptt (and, one time in 20, bptt / 2)
    assert min(lengths[:-1]) < 15  # a half-length window or a low draw occurs in 60 windows
    # A tiny bptt is held to the floor of 5, the ceiling bptt + 40 holds too.
    small = [len(inputs) for _, inputs, _ in variable_bptt_windows(source, 1, seed=6)]
    assert all(5 <= length <= 41 for length in small[:-1]) and small.count(5) > len(small) // 2



def test_variable_bptt_lengths_follow_the_seed_alone_so_ranks_and_resumes_agree():
    source = torch.arange(2000).view(500, 4)

    def lengths(seed, start=0):
        return [(row, len(inputs)) for row, inputs, _ in variable_bptt_windows(source, 20, start, seed=seed)]

    straight = lengths(3)
    torch.manual_seed(0)  # the global generator (dropout masks, which differ between ranks) plays no part
    assert lengths(3) == straight
    assert lengths(3) != lengths(4)
    # Stopped after 5 windows and resumed from the next one's row: the same windows as straight through.
    row = straight[5][0]
    assert straight[:5] + lengths(3, start=row) == straight
