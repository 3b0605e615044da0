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
