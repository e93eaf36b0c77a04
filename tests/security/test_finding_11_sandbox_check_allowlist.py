"""Finding 11: `manage.py sandbox_check` shows the seccomp allowlist an
operator is running with: every system call a run may make (with the
arguments it may make it with), and nothing that is refused."""

import json

from django.core.management import call_command


def test_sandbox_check_lists_the_seccomp_allowlist(capsys):
    call_command("sandbox_check")
    lines = capsys.readouterr().out.strip().splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("seccomp allowlist")), None)
    assert header is not None, lines
    assert "any other system call fails with EPERM" in lines[header]
    entries = [line.strip() for line in lines[header + 1:] if line.startswith("  ")]
    names = {entry.partition(":")[0] for entry in entries}
    assert {"read", "mmap", "futex", "exit_group", "clone", "fcntl", "socketpair"} <= names, entries
    assert not names & {"socket", "flock", "inotify_init1", "splice", "modify_ldt", "sysinfo", "seccomp"}, entries
    assert any(e.startswith("fcntl:") and "F_GETFD" in e and "no locks" in e for e in entries), entries
    assert json.loads(lines[-1])["ok"] is True
