"""What `make test` and `make demo` find missing among the Debian packages they run, and
what they say where they cannot install it (portal/system_packages.py)."""

import stat

from portal import system_packages


def _tools(folder, *names):
    for name in names:
        path = folder / name
        path.write_text("#!/bin/sh\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_each_missing_package_is_named_once(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    for variable in ("PROMETHEUS_BIN", "PROMTOOL_BIN", "PORTAL_TEST_CHROMIUM"):
        monkeypatch.delenv(variable, raising=False)
    needs = system_packages.NEEDS["test"]
    assert system_packages.missing(needs) == ["prometheus", "espeak-ng", "ffmpeg", "chromium"]
    _tools(tmp_path, "ffmpeg", "espeak-ng", "chromium", "promtool")
    # ffprobe comes with ffmpeg, prometheus with promtool: a package is there when all are.
    assert system_packages.missing(needs) == ["prometheus", "ffmpeg"]
    _tools(tmp_path, "ffprobe")
    monkeypatch.setenv("PROMETHEUS_BIN", str(tmp_path / "promtool"))
    assert system_packages.missing(needs) == []


def test_where_it_cannot_install_it_says_what_and_how(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("PORTAL_TEST_CHROMIUM", raising=False)
    monkeypatch.setattr(system_packages, "install_prefix", lambda: None)
    _tools(tmp_path, "espeak-ng", "ffmpeg", "ffprobe", "prometheus", "promtool")
    assert system_packages.main(["test"]) == 0
    said = capsys.readouterr().out
    assert "Not installed: chromium (no root and no password-less sudo)" in said
    assert "sudo apt-get install chromium" in said
    assert "will be skipped, each saying why" in said
    assert system_packages.main(["nonsense"]) == 2


def test_without_apt_get_nothing_is_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert system_packages.install_prefix() is None
