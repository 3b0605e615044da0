"""Methods: pure, batched tensor functions ``(model, images, targets, ...) -> Tensor``; no I/O, no printing.

Input contract, everywhere: ``images`` N×3×H×W float in pixel space [0, 1] (the model wrapper normalises),
``targets`` N int64 class indices. Device and dtype follow ``images``.
"""

from netviz.methods.common import chunked, frozen_eval, gather_scores
from netviz.methods.saliency import vanilla_gradient
from netviz.methods.attribution import (as_map, channel_max_abs, grad_cam, gradient, guided_backprop,
                                        integrated_gradients, smoothgrad, standard_methods)
from netviz.methods.baselines import black, blurred, gaussian_blur, gray, substrate
from netviz.methods.perturbation import perturbation_curve, saliency_ranks
from netviz.methods.randomization import cascading_randomization, weight_layers

__all__ = ["chunked", "frozen_eval", "gather_scores", "vanilla_gradient",
           "as_map", "channel_max_abs", "grad_cam", "gradient", "guided_backprop", "integrated_gradients", "smoothgrad",
           "standard_methods", "black", "blurred", "gaussian_blur", "gray", "substrate", "perturbation_curve",
           "saliency_ranks", "cascading_randomization", "weight_layers"]
