import math

import torch

from hallucinate.training.loss_meter import LossMeter


def test_means_skip_nonfinite_steps_and_count_them():
    meter = LossMeter()
    meter.add({"a": torch.tensor(1.0), "b": torch.tensor(math.nan)})
    meter.add({"a": torch.tensor(math.inf), "b": torch.tensor(math.nan)})
    meter.add({"a": torch.tensor(3.0), "b": torch.tensor(math.nan)})
    means, counts, steps, seconds = meter.take()
    assert means == {"a": 2.0, "b": None}
    assert counts == {"a": 1, "b": 3}
    assert steps == 3 and seconds >= 0


def test_take_starts_a_new_interval_and_leave_out_shortens_it():
    meter = LossMeter()
    meter.add({"a": torch.tensor(5.0)})
    meter.take()
    meter.add({"a": torch.tensor(7.0)})
    meter.leave_out(1000.0)
    means, counts, steps, seconds = meter.take()
    assert means == {"a": 7.0} and counts == {"a": 0} and steps == 1
    assert seconds < 0  # the 1000 s left out exceed the interval's wall time
