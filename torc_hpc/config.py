"""Defaults from a config file: `~/.config/torc/config.toml`, or the file TORC_CONFIG names.

Precedence, for every setting: a command-line flag > its environment variable > the config file > torc's
default. `resolve` is pure (flags, environment and file contents in, values with their source out);
`load_file` and `settings` are the thin edge that reads the file and the process environment. EXAMPLE is
what a file looks like (`torc config show --example` prints it).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from torc_hpc.errors import ConfigError

ENV_CONFIG = "TORC_CONFIG"

EXAMPLE = """\
# {path}
database_url = "postgresql://me@dbhost/torc"   # no password here: use ~/.pgpass
output_dir = "torc_output"
# db_pooler = "transaction"                        # pgbouncer in transaction mode in front of PostgreSQL
# notify_url = "postgresql://me@dbhost:5432/torc"  # direct, for LISTEN (else idle workers poll)

[slurm]
account = "my_project"
partition = "standard"
qos = "normal"
walltime = "04:00:00"
template = "~/torc/my_worker.sh"
"""


@dataclass(frozen=True)
class Setting:
    key: str            # dotted path in the file: "database_url", "slurm.account"
    env: str            # environment variable
    default: Any
    help: str
    secret_url: bool = False   # a URL whose password is never printed


SETTINGS: tuple[Setting, ...] = (
    Setting("database_url", "TORC_DATABASE_URL", None,
            "PostgreSQL URL; none: the embedded server in your data directory", secret_url=True),
    Setting("db_pooler", "TORC_DB_POOLER", "none",
            "what is between torc and PostgreSQL: none, session, or transaction (pgbouncer's transaction "
            "pooling: nothing prepared, no LISTEN on the pooled URL)"),
    Setting("notify_url", "TORC_NOTIFY_URL", None,
            "with db_pooler = transaction: a direct URL to PostgreSQL for LISTEN only; none: idle workers poll",
            secret_url=True),
    Setting("output_dir", "TORC_OUTPUT_DIR", "torc_output", "where job logs go, for new workflows"),
    Setting("slurm.account", "TORC_SLURM_ACCOUNT", None, "sbatch --account"),
    Setting("slurm.partition", "TORC_SLURM_PARTITION", None, "sbatch --partition"),
    Setting("slurm.qos", "TORC_SLURM_QOS", None, "sbatch --qos"),
    Setting("slurm.walltime", "TORC_SLURM_WALLTIME", None, "allocation time limit (HH:MM:SS or PT1H)"),
    Setting("slurm.template", "TORC_SLURM_TEMPLATE", None, "your own sbatch template"),
)
BY_KEY = {s.key: s for s in SETTINGS}


@dataclass(frozen=True)
class Value:
    key: str
    value: Any
    source: str   # "flag", "env TORC_…", "config /path/config.toml", "default"


def default_path(env: Mapping[str, str]) -> Path:
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "torc" / "config.toml"


def flatten(data: dict, path: Path) -> dict[str, Any]:
    """The file's tables as dotted keys; unknown keys and wrong types are errors naming the file and key."""
    flat: dict[str, Any] = {}
    problems = []

    def walk(node: dict, prefix: str) -> None:
        for k, v in node.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                if not any(s.key.startswith(key + ".") for s in SETTINGS):
                    problems.append(f"unknown table [{key}]")
                    continue
                walk(v, key + ".")
            elif key not in BY_KEY:
                problems.append(f"unknown key '{key}'")
            elif not isinstance(v, str):
                problems.append(f"'{key}' must be a string, not {type(v).__name__}")
            else:
                flat[key] = v

    walk(data, "")
    if problems:
        known = ", ".join(s.key for s in SETTINGS)
        raise ConfigError(f"{path}: {'; '.join(problems)} (known keys: {known})")
    return flat


def load_file(path: Path) -> dict[str, Any]:
    """The settings a config file gives, or {} when there is none."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file: {e.strerror}") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    return flatten(data, path)


def resolve(flags: Mapping[str, Any], env: Mapping[str, str], file_values: Mapping[str, Any],
            file_path: Path | None) -> dict[str, Value]:
    """Every setting with its effective value and where it came from (flag > env > config file > default)."""
    out = {}
    for s in SETTINGS:
        if flags.get(s.key) is not None:
            out[s.key] = Value(s.key, flags[s.key], "flag")
        elif env.get(s.env):
            out[s.key] = Value(s.key, env[s.env], f"env {s.env}")
        elif file_values.get(s.key) is not None:
            out[s.key] = Value(s.key, file_values[s.key], f"config {file_path}")
        else:
            out[s.key] = Value(s.key, s.default, "default")
    return out


class Settings:
    """The settings of this process: flags recorded by the CLI as it parses, the environment, the file."""

    def __init__(self, env: Mapping[str, str] | None = None):
        self.env = os.environ if env is None else env
        self.path = default_path(self.env)
        self._file: dict[str, Any] | None = None
        self.flags: dict[str, Any] = {}

    def file_values(self) -> dict[str, Any]:
        if self._file is None:
            self._file = load_file(self.path)
        return self._file

    def all(self) -> dict[str, Value]:
        return resolve(self.flags, self.env, self.file_values(), self.path)

    def get(self, key: str, flag: Any = None) -> Any:
        """The effective value of one setting; `flag` is what the command line gave (None: nothing)."""
        return self.value(key, flag).value

    def value(self, key: str, flag: Any = None) -> Value:
        """One setting's effective value and where it came from; `flag` is what the command line gave."""
        if flag is not None:
            return Value(key, flag, "flag")
        return resolve({}, self.env, self.file_values(), self.path)[key]


settings = Settings()
