"""netviz: look inside image classifiers (saliency, adversarial examples, class visualization).

Layers (imports flow one way): ``report`` -> ``experiments`` -> ``methods`` / ``metrics`` -> ``models`` / ``data``.
"""

__version__ = "0.1.0"
