"""The config file: defaults, round trip, and clear errors for a broken file."""

from __future__ import annotations

import json

import pytest

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.settings.input_fields import parse_settings, settings_fields
from llamadesk.app.settings.user_config import Config, config_path, load_config, save_config, update_config


def test_missing_file_gives_defaults_and_the_file_lives_under_llamadesk_home(tmp_path, llamadesk_home):
    assert load_config(tmp_path / "none.json") == Config()
    assert str(config_path()).startswith(str(llamadesk_home))
    settings = Config().conversation_settings("chat")
    assert settings.model == "smollm2" and settings.system_prompt == "You are a helpful assistant."


def test_round_trip_and_partial_files(tmp_path):
    path = tmp_path / "config.json"
    save_config(Config(theme="nord", temperature=0.1), path)
    assert load_config(path) == Config(theme="nord", temperature=0.1)
    path.write_text(json.dumps({"models": {"chat": "my-model"}}))
    loaded = load_config(path)
    assert loaded.models == {"chat": "my-model", "translate": "gemma3-270m"}  # unspecified modes keep defaults
    assert loaded.theme == Config().theme


@pytest.mark.parametrize(
    "text, message",
    [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"), ('{"colour": "red"}', "unknown setting")],
)
def test_broken_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(BadInputError, match=message):
        load_config(path)


def test_settings_form_round_trip_and_errors():
    settings = Config().conversation_settings()
    assert parse_settings(settings_fields(settings)) == settings
    fields = settings_fields(settings)
    with pytest.raises(BadInputError, match="temperature"):
        parse_settings({**fields, "temperature": "hot"})
    with pytest.raises(BadInputError, match="top-p"):
        parse_settings({**fields, "top_p": "2"})
    with pytest.raises(BadInputError, match="context length"):
        parse_settings({**fields, "context_length": "10"})
    assert parse_settings({**fields, "max_tokens": ""}).max_tokens is None


def test_update_config_changes_only_the_given_settings_in_the_file_as_it_is_now(tmp_path):
    # The app wrote back the file it read at start, whole: a hand edit made while it was open was
    # reverted when the user set a default model, and every default was written out.
    path = tmp_path / "config.json"
    update_config({"theme": "nord"}, path)
    assert json.loads(path.read_text()) == {"theme": "nord"}
    path.write_text(json.dumps({"theme": "nord", "system_prompt": "Answer in French.", "models": {"chat": "mine"}}))
    update_config({"models": {"translate": "gemma3-270m"}, "translate_parallel": 2}, path)
    assert json.loads(path.read_text()) == {
        "theme": "nord",
        "system_prompt": "Answer in French.",
        "models": {"chat": "mine", "translate": "gemma3-270m"},
        "translate_parallel": 2,
    }


def test_update_config_leaves_a_broken_file_and_refuses_a_bad_value(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"temperature": "hot"}')
    with pytest.raises(BadInputError, match="temperature"):
        update_config({"theme": "nord"}, path)
    assert path.read_text() == '{"temperature": "hot"}'
    path.write_text("{}")
    with pytest.raises(BadInputError, match="translate_parallel"):
        update_config({"translate_parallel": 0}, path)
    assert path.read_text() == "{}"


def test_a_setting_saved_through_a_linked_config_json_lands_in_the_linked_file(tmp_path):
    # config.json kept in a dotfiles repo and linked into place: saving the theme replaced the link
    # with a plain file, and the dotfiles copy was silently no longer read.
    dotfiles = tmp_path / "dotfiles" / "config.json"
    dotfiles.parent.mkdir()
    dotfiles.write_text('{"system_prompt": "Answer in French."}')
    link = tmp_path / "config" / "config.json"
    link.parent.mkdir()
    link.symlink_to(dotfiles)
    update_config({"theme": "nord"}, link)
    save_config(load_config(link), link)
    assert link.is_symlink() and link.resolve() == dotfiles
    assert json.loads(dotfiles.read_text())["theme"] == "nord"
    assert json.loads(dotfiles.read_text())["system_prompt"] == "Answer in French."
