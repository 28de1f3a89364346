"""The start-up privilege report, from real /proc status files of this and a capless process."""

import subprocess
import sys

import pytest

from xtcp_uring import privileges


def test_report_names_each_capability_and_what_its_absence_costs(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t0000000000001000\n")  # CAP_NET_ADMIN only
    p = privileges.current(str(status))
    lines = p.report()
    assert lines[0].startswith("CAP_SYS_ADMIN: no, so only this process's namespace")
    assert lines[2].startswith("CAP_NET_ADMIN: yes")
    assert not p.can_enter_namespaces


@pytest.mark.root  # setpriv needs root to drop to another user
def test_a_process_without_capabilities_sees_none():
    script = "from xtcp_uring import privileges; print(privileges.current().effective)"
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                        sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert int(r.stdout) == 0
