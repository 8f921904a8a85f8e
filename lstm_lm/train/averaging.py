"""Weight averaging for NT-ASGD (Merity et al. 2018): once validation stops improving, SGD goes on as before while
the mean of the weights after every step since then is kept, and validation, the saved model and the final numbers
use that mean. Polyak & Juditsky (1992) show the average converges faster than the iterates it averages."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch


class WeightAverage:
    def __init__(self, parameters: list[torch.nn.Parameter]):
        self.parameters = parameters
        self.average = [parameter.detach().clone() for parameter in parameters]
        self.count = 0  # steps averaged; the first update replaces the clone above

    @torch.no_grad()
    def update(self) -> None:
        """Fold in the weights after one more step: avg += (w - avg) / count."""
        self.count += 1
        for average, parameter in zip(self.average, self.parameters):
            average.lerp_(parameter, 1.0 / self.count)

    @contextmanager
    @torch.no_grad()
    def swapped_in(self) -> Iterator[None]:
        """The averaged weights in the model for the duration; the trained ones back afterwards."""
        trained = [parameter.detach().clone() for parameter in self.parameters]
        for parameter, average in zip(self.parameters, self.average):
            parameter.copy_(average)
        try:
            yield
        finally:
            for parameter, weights in zip(self.parameters, trained):
                parameter.copy_(weights)

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "average": [average.clone() for average in self.average]}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["average"]) != len(self.average):
            raise ValueError(f"{len(state['average'])} averaged tensors for {len(self.average)} parameters")
        for average, saved in zip(self.average, state["average"]):
            average.copy_(saved)
        self.count = state["count"]
