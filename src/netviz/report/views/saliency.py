"""What the saliency text states that ``metrics.json`` does not store: the images it names (misses, wrong
predictions), counts it quotes (images without boxes, images where two outcomes disagree), and which phrasing
applies (one job or several, all images drawn or the first ones)."""

from __future__ import annotations


def derive(r: dict) -> None:
    """Add the section's derived values to its metrics as loaded (in place)."""
    for m in r.get("models", {}).values():
        rows = m.get("per_image", [])
        m["misses"] = [row for row in rows if row.get("hit") is False]  # pointing-game misses (not unscored images)
        m["wrong"] = [row for row in rows if row.get("correct") is False]
        m["unscored"] = m["n"] - m["scored"]  # images without boxes: left out of the pointing game
        m["one_job"] = m.get("jobs", 1) == 1
        m["all_drawn"] = m.get("drawn", m["n"]) == m["n"]  # the figure of "all" images draws every image
    for claim in r.get("claims", {}).values():
        data = claim.get("data") or {}
        if "only_a" in data and "only_b" in data:  # a McNemar test: the images where the two outcomes disagree
            data["discordant"] = data["only_a"] + data["only_b"]
