"""Which Unix user the cluster watcher submits a role's allocations as: the user of the same name, or the
site's TORC_USER_MAP; never root for another role, and a bad map line is an error naming file and line."""

import pwd

import pytest

from torc_hpc.errors import TorcError
from torc_hpc.slurm import owner


def test_roles_map_to_users_of_the_same_name_unless_the_site_maps_them(tmp_path, monkeypatch):
    someone = pwd.getpwuid(65534).pw_name          # 'nobody' on Debian
    monkeypatch.delenv(owner.ENV_USER_MAP, raising=False)
    assert owner.identity_of(someone).uid == 65534
    with pytest.raises(TorcError, match="no Unix user 'role_without_a_user'"):
        owner.identity_of("role_without_a_user")
    mapping = tmp_path / "user-map"
    mapping.write_text(f"# site map\nalice_db {someone}   # alice's role\n\nevil_db root\n")
    monkeypatch.setenv(owner.ENV_USER_MAP, str(mapping))
    ident = owner.identity_of("alice_db")
    assert (ident.role, ident.user, ident.uid) == ("alice_db", someone, 65534)
    with pytest.raises(TorcError, match="refusing to submit role 'evil_db'.*as root"):
        owner.submitter_for("evil_db", "watcher_role")
    assert owner.submitter_for("watcher_role", "watcher_role") is None     # its own workflows: as it is
    mapping.write_text("alice_db\n")
    with pytest.raises(TorcError, match=r"user-map:1: expected 'ROLE UNIX_USER'"):
        owner.identity_of("alice_db")
