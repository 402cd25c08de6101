"""The config file: precedence flag > environment > file > default, clear errors naming file and key."""

import pytest

from torc_hpc.config import Settings, default_path, flatten, load_file, resolve
from torc_hpc.errors import ConfigError


def test_precedence_flag_env_file_default(tmp_path):
    f = tmp_path / "c.toml"
    values = {"slurm.account": "from_file", "slurm.partition": "file_part", "output_dir": "file_out"}
    got = resolve({"slurm.account": "from_flag"}, {"TORC_SLURM_ACCOUNT": "from_env", "TORC_SLURM_PARTITION": "env_part"},
                  values, f)
    assert (got["slurm.account"].value, got["slurm.account"].source) == ("from_flag", "flag")
    assert (got["slurm.partition"].value, got["slurm.partition"].source) == ("env_part", "env TORC_SLURM_PARTITION")
    assert (got["output_dir"].value, got["output_dir"].source) == ("file_out", f"config {f}")
    assert (got["slurm.qos"].value, got["slurm.qos"].source) == (None, "default")
    assert got["database_url"].source == "default"


def test_file_is_found_through_torc_config_or_xdg(tmp_path):
    assert default_path({"TORC_CONFIG": str(tmp_path / "x.toml")}) == tmp_path / "x.toml"
    assert default_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "torc" / "config.toml"
    assert default_path({"HOME": str(tmp_path)}) == tmp_path / ".config" / "torc" / "config.toml"


def test_a_file_is_read_and_a_missing_one_is_empty(tmp_path):
    f = tmp_path / "config.toml"
    assert load_file(f) == {}
    f.write_text('database_url = "postgresql://me@db/torc"\n[slurm]\naccount = "proj"\nwalltime = "01:00:00"\n')
    assert load_file(f) == {"database_url": "postgresql://me@db/torc", "slurm.account": "proj",
                            "slurm.walltime": "01:00:00"}
    s = Settings({"TORC_CONFIG": str(f)})
    assert s.get("slurm.account") == "proj" and s.get("slurm.account", "flag") == "flag"


@pytest.mark.parametrize("text, says", [
    ('acount = "x"\n', "unknown key 'acount'"),
    ('[slurm]\naccount = 3\n', "'slurm.account' must be a string"),
    ('[slrum]\naccount = "x"\n', "unknown table [slrum]"),
    ('account = \n', "not valid TOML"),
])
def test_bad_files_name_the_file_and_the_key(tmp_path, text, says):
    f = tmp_path / "config.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_file(f)
    assert str(f) in str(e.value) and says in str(e.value)


def test_flatten_rejects_nothing_it_knows():
    assert flatten({"slurm": {"qos": "normal", "template": "t.sh"}}, "x") == {"slurm.qos": "normal",
                                                                              "slurm.template": "t.sh"}
