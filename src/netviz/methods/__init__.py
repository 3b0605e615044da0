"""Methods: pure, batched tensor functions ``(model, images, targets, ...) -> Tensor``; no I/O, no printing.

Input contract, everywhere: ``images`` N×3×H×W float in pixel space [0, 1] (the model wrapper normalises),
``targets`` N int64 class indices. Device and dtype follow ``images``.
"""

from netviz.methods.common import chunked, frozen_eval, gather_scores
from netviz.methods.saliency import vanilla_gradient

__all__ = ["chunked", "frozen_eval", "gather_scores", "vanilla_gradient"]
