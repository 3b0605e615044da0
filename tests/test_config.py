"""Config: defaults are the schema; overrides are type-checked; errors name the valid keys."""

import pytest

from netviz.config import load_config, parse_override, section_models
from netviz.errors import NetvizError


def test_defaults_load():
    config = load_config()
    assert config["saliency"]["tolerance_px"] == 15
    assert config["models"]["names"][0] == "squeezenet1_1"


def test_override_list_of_models():
    config = load_config(overrides=['saliency.models=["squeezenet1_1","efficientnet_lite0"]'])
    assert section_models(config, "saliency") == ["squeezenet1_1", "efficientnet_lite0"]


def test_empty_section_models_fall_back_to_models_names():
    config = load_config(overrides=['models.names=["resnet18"]'])
    assert section_models(config, "saliency") == ["resnet18"]


def test_bare_word_is_a_string():
    assert parse_override("run.device=cpu") == {"run": {"device": "cpu"}}


def test_int_accepted_for_float_but_not_the_reverse(tmp_path):
    with pytest.raises(NetvizError, match="saliency.tolerance_px.* must be an integer"):
        load_config(overrides=["saliency.tolerance_px=1.5"])


def test_unknown_key_names_valid_keys():
    with pytest.raises(NetvizError) as err:
        load_config(overrides=["saliency.tolerence_px=3"])
    message = str(err.value)
    assert "saliency.tolerence_px" in message and "tolerance_px" in message and "\n" not in message


def test_unknown_section_names_sections():
    with pytest.raises(NetvizError, match="valid sections: .*saliency"):
        load_config(overrides=["salincy.num_shown=3"])


def test_wrong_type_in_list():
    with pytest.raises(NetvizError, match=r"models.names\[1\]"):
        load_config(overrides=['models.names=["squeezenet1_1", 3]'])


def test_weights_table_takes_any_model_name():
    config = load_config(overrides=['models.weights.vgg16="/tmp/vgg16.pth"'])
    assert config["models"]["weights"]["vgg16"] == "/tmp/vgg16.pth"


def test_overlay_file(tmp_path):
    overlay = tmp_path / "mine.toml"
    overlay.write_text('[saliency]\nnum_shown = 3\n')
    assert load_config([overlay])["saliency"]["num_shown"] == 3


def test_broken_overlay_is_one_line_error(tmp_path):
    overlay = tmp_path / "bad.toml"
    overlay.write_text("[saliency\n")
    with pytest.raises(NetvizError, match="not valid TOML"):
        load_config([overlay])
    with pytest.raises(NetvizError, match="not found"):
        load_config([tmp_path / "missing.toml"])


def test_set_without_equals():
    with pytest.raises(NetvizError, match="KEY=VALUE"):
        parse_override("saliency.num_shown")


def test_every_numeric_key_has_a_range():
    """Each int or float key of default.toml is range-checked at load (the table in config.py), so a new key
    cannot slip in unchecked; every table entry names a real key."""
    from netviz import cache
    from netviz.config import CONSTRAINTS, _numbers

    flat = cache.flatten(load_config())
    numeric = {key for key, value in flat.items() if _numbers(value) and not key.startswith("grade.tolerances")}
    assert numeric - set(CONSTRAINTS) == set()
    assert set(CONSTRAINTS) - set(flat) == set()


@pytest.mark.parametrize("override, message", [
    ("saliency.tolerance_px=-1", "'saliency.tolerance_px' must be >= 0, got -1"),
    ("classviz.learning_rate=nan", "'classviz.learning_rate' must be a finite number"),
    ("adversarial.eps_grid=[1.0, -2.0]", "'adversarial.eps_grid' must be > 0, got -2.0 in [1.0, -2.0]"),
    ("run.seed=-1", "'run.seed' must be in 0..4294967295"),
])
def test_values_are_range_checked_at_load(override, message):
    with pytest.raises(NetvizError) as err:
        load_config(overrides=[override])
    assert message in str(err.value)


def test_ranges_admit_the_defaults_and_edges():
    config = load_config(overrides=["saliency.tolerance_px=0", "adversarial.fooling_kappa=0", "run.seed=4294967295"])
    assert config["run"]["seed"] == 2**32 - 1
