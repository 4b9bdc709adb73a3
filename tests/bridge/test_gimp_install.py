"""``plugin_host gimp install | uninstall | doctor`` on a temporary GIMP profile folder."""
from __future__ import annotations

import json
import os
import stat

from plugin_host.cli import main


def run(capsys, registry, *argv):
    code = main(list(argv), registry=registry)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_install_puts_an_executable_plug_in_in_its_own_folder(capsys, toy_registry, tmp_path):
    code, text = run(capsys, toy_registry, "gimp", "install", "--gimp-dir", str(tmp_path))
    folder = tmp_path / "plug-ins" / "plugin_host_bridge"
    entry = folder / "plugin_host_bridge.py"
    assert code == 0 and f"installed the GIMP bridge into {folder}" in text
    assert entry.read_text().startswith("#!/usr/bin/env python3\n")
    assert stat.S_IMODE(entry.stat().st_mode) & 0o111 == 0o111
    assert {p.name for p in folder.iterdir()} == {"plugin_host_bridge.py", "phb_args.py", "phb_client.py",
                                                 "phb_wire.py", "methods.json", "host.json"}
    host = json.loads((folder / "host.json").read_text())
    assert os.access(host["command"][0], os.X_OK) and "GIMP will call " + host["command"][0] in text
    methods = json.loads((folder / "methods.json").read_text())["methods"]
    assert {"gatys", "adain", "slow"} <= {m["name"] for m in methods}
    assert not list((tmp_path / "plug-ins").glob(".plugin_host_bridge*")), "no staging folder left behind"


def test_the_installed_bridge_runs_on_the_standard_library_with_the_hosts_wire_format(capsys, toy_registry, tmp_path):
    """GIMP's Python has no plugin_host: the bridge imports the copy of plugin_host/serve/wire.py beside it."""
    import subprocess
    import sys
    from pathlib import Path

    from plugin_host.serve import wire

    run(capsys, toy_registry, "gimp", "install", "--gimp-dir", str(tmp_path))
    folder = tmp_path / "plug-ins" / "plugin_host_bridge"
    assert (folder / "phb_wire.py").read_bytes() == Path(wire.__file__).read_bytes()
    code = ("import sys; import phb_args, phb_client, phb_wire; "
            "assert phb_client.health is phb_wire.health and phb_wire.PROTOCOL == %d; "
            "print(sorted(m for m in sys.modules if m.startswith('plugin_host')))" % wire.PROTOCOL)
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=folder, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_the_host_never_imports_the_bridge():
    """The dependency points bridge -> host wire format: nothing in plugin_host imports the GIMP package."""
    import ast
    from pathlib import Path

    import plugin_host

    found = []
    for path in Path(plugin_host.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("plugin_host_gimp", "phb_wire",
                                                                                 "phb_client", "phb_args")]
    assert found == []


def test_doctor_passes_a_fresh_install_and_names_each_problem(capsys, toy_registry, tmp_path):
    gimp = ["--gimp-dir", str(tmp_path)]
    run(capsys, toy_registry, "gimp", "install", *gimp)
    code, text = run(capsys, toy_registry, "gimp", "doctor", *gimp)
    assert code == 0 and "PROBLEM" not in text and "looks fine" in text

    folder = tmp_path / "plug-ins" / "plugin_host_bridge"
    (folder / "plugin_host_bridge.py").chmod(0o644)
    (folder / "phb_wire.py").write_text("# changed\n")
    host = json.loads((folder / "host.json").read_text())
    (folder / "host.json").write_text(json.dumps(dict(host, command=["/gone/plugin_host"])))
    methods = json.loads((folder / "methods.json").read_text())
    methods["methods"] = [m for m in methods["methods"] if m["name"] != "slow"]
    methods["digest"] = "old"
    (folder / "methods.json").write_text(json.dumps(methods))
    code, text = run(capsys, toy_registry, "gimp", "doctor", *gimp)
    problems = [line for line in text.splitlines() if line.startswith("PROBLEM")]
    assert code == 2 and len(problems) == 4, text
    assert "not executable, so GIMP ignores it: chmod +x" in text
    assert "outdated or missing: phb_wire.py" in text
    assert "host command ['/gone/plugin_host'] is missing" in text
    assert "method descriptions are out of date (+slow)" in text
    assert all("plugin_host gimp install" in p or "chmod" in p for p in problems)


def test_doctor_without_an_install_says_how_to_install(capsys, toy_registry, tmp_path):
    code, text = run(capsys, toy_registry, "gimp", "doctor", "--gimp-dir", str(tmp_path))
    assert code == 2 and "no plugin_host_bridge.py" in text and f"--gimp-dir {tmp_path}" in text


def test_install_again_replaces_and_uninstall_removes(capsys, toy_registry, tmp_path):
    gimp = ["--gimp-dir", str(tmp_path)]
    run(capsys, toy_registry, "gimp", "install", *gimp)
    (tmp_path / "plug-ins" / "plugin_host_bridge" / "stale.py").write_text("")
    run(capsys, toy_registry, "gimp", "install", *gimp)
    assert not (tmp_path / "plug-ins" / "plugin_host_bridge" / "stale.py").exists()
    code, text = run(capsys, toy_registry, "gimp", "uninstall", *gimp)
    assert code == 0 and not (tmp_path / "plug-ins" / "plugin_host_bridge").exists()
    code, text = run(capsys, toy_registry, "gimp", "uninstall", *gimp)
    assert code == 2 and "no GIMP bridge is installed" in text and "Traceback" not in text


def test_default_profile_folder_follows_gimp3_directory(monkeypatch, tmp_path):
    from plugin_host.gimp_install import default_gimp_dir, plugins_folder

    monkeypatch.setenv("GIMP3_DIRECTORY", str(tmp_path / "profile"))
    assert plugins_folder(None) == tmp_path / "profile" / "plug-ins"
    monkeypatch.delenv("GIMP3_DIRECTORY")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert default_gimp_dir() == tmp_path / "xdg" / "GIMP" / "3.0"


def test_serve_status_says_when_nothing_runs(capsys, toy_registry, tmp_path):
    code, text = run(capsys, toy_registry, "serve", "--status", "--server-file", str(tmp_path / "none.json"))
    assert code == 2 and json.loads(text)["running"] is False
    code, text = run(capsys, toy_registry, "serve", "--stop", "--server-file", str(tmp_path / "none.json"))
    assert code == 2 and "no server answers" in text
