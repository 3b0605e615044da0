"""What the class-visualization text says about particular classes and photographs: data, read by
:mod:`netviz.report.views.classviz`, so the template names no class.

The phrases describe the figures of the default configuration (moved here unchanged from the template); a class
or photograph without an entry gets the text's generic sentence. Kept as a Python module rather than a TOML file so that the
report's cache key (the code the renderer imports) changes when they do, and so that an installed netviz has them.
Line breaks inside a phrase are where the report's source text wraps (the report is compared byte for byte).
"""

from __future__ import annotations

CLASSES: dict[int, dict[str, str]] = {
    # gallery: what the class looks like in its visualization, as listed after the gallery;
    # parts: what appears when it is the featured class (Q8), before ", repeated at several places and scales"
    76: {"gallery": "spider bodies with radiating legs for the tarantula",
         "parts": "hairy, jointed legs radiating from dark\nbodies"},
    78: {"gallery": "round, many-legged bodies for the tick"},
    113: {"gallery": "ridged, rounded shells for the snail"},
    187: {"gallery": "clusters of eyes in long fur for the terrier"},
    366: {"gallery": "faces for the gorilla"},
    604: {"gallery": "two bulbs joined by a narrow waist for the hourglass"},
    683: {"gallery": "straight tubes with keys, crossing each other, for the oboe"},
}
"""ImageNet class index -> phrases about its class visualization."""

IMAGES: dict[str, dict] = {
    # layout: what of the photograph's layout survives the ascent; objects: its annotated objects;
    # becomes: class index -> what those objects turn into when the photograph is pushed toward that class
    "hay": {"layout": "the horizon, the sky and the field stay where they\nwere",
            "objects": "the round bales",
            "becomes": {113: "and the bales, already round and blob-like, turn into shell-like forms"}},
}
"""Course photograph (by name) -> phrases about it as a start (Q10)."""
