"""``plugin_host gimp install | uninstall | doctor``: the GIMP 3 plug-in folder and what it records.

Installing copies ``gimp_bridge/plugin_host_bridge/`` into GIMP's ``plug-ins/plugin_host_bridge/``
(GIMP runs only the file named like its folder, and only if it is executable), with the host's wire
format (:mod:`plugin_host.serve.wire`) beside it as ``phb_wire.py``, and writes two
JSON files beside it: ``methods.json`` (every method's description, so GIMP registers the
procedures at start-up without starting torch) and ``host.json`` (this environment's
``plugin_host`` command and server file). Files are written to a temporary folder first and
swapped in, so GIMP never sees half an install.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from . import __version__
from .errors import PluginHostError

PLUGIN = "plugin_host_bridge"
ENTRY = PLUGIN + ".py"
WIRE = "phb_wire.py"
SHEBANG = "#!/usr/bin/env python3"


def source_folder() -> Path:
    """The bridge's folder, found as package data (``plugin_host_gimp``): the host never imports the bridge."""
    import importlib.util

    spec = importlib.util.find_spec("plugin_host_gimp")
    if spec is None or not spec.submodule_search_locations:
        raise PluginHostError("the GIMP bridge's files are not installed with plugin_host",
                              hint="reinstall plugin_host (pip install --force-reinstall plugin_host)")
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def bridge_files() -> list[tuple[str, Path]]:
    """``(name in the plug-in folder, source)`` of each file GIMP needs: the entry script, the bridge's
    helper modules and the host's wire format, which the bridge imports as ``phb_wire``."""
    from .serve import wire

    folder = source_folder()
    helpers = [(path.name, path) for path in sorted(folder.glob("phb_*.py"))]
    return [(ENTRY, folder / ENTRY), *helpers, (WIRE, Path(wire.__file__).resolve())]


def default_gimp_dir() -> Path:
    """GIMP 3's profile folder: ``$GIMP3_DIRECTORY``, else where GIMP puts it on this platform."""
    if os.environ.get("GIMP3_DIRECTORY"):
        return Path(os.environ["GIMP3_DIRECTORY"])
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "GIMP" / "3.0"
    if os.name == "nt":
        return Path(os.environ.get("APPDATA", home / "AppData" / "Roaming")) / "GIMP" / "3.0"
    return Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "GIMP" / "3.0"


def plugins_folder(gimp_dir: Path | None) -> Path:
    return (gimp_dir or default_gimp_dir()).expanduser() / "plug-ins"


def host_command() -> list[str]:
    """How to call this environment's plugin_host: its console script, else ``python -m plugin_host``."""
    script = Path(sys.executable).parent / ("plugin_host.exe" if os.name == "nt" else "plugin_host")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "plugin_host"]


def methods_document(registry: Any) -> dict:
    from .serve.httpd import describe_methods

    methods = describe_methods(registry)
    digest = hashlib.sha256(json.dumps(methods, sort_keys=True).encode()).hexdigest()
    return {"plugin_host": __version__, "digest": digest, "methods": methods}


def install(plugins: Path, registry: Any) -> Iterator[str]:
    """Install (or replace) the bridge; yields one line per thing done."""
    from .serve.state import default_server_file

    target = plugins / PLUGIN
    plugins.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{PLUGIN}-", dir=plugins))
    try:
        for name, src in bridge_files():
            shutil.copyfile(src, staging / name)
        os.chmod(staging / ENTRY, 0o755)
        document = methods_document(registry)
        _write_json(staging / "methods.json", document)
        host = {"command": host_command(), "server_file": str(default_server_file()),
                "plugin_host": __version__, "methods_digest": document["digest"]}
        _write_json(staging / "host.json", host)
        os.chmod(staging, 0o755)
        old = plugins / f".{PLUGIN}-old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    names = ", ".join(m["name"] for m in document["methods"]) or "none"
    yield f"installed the GIMP bridge into {target}"
    yield f"  {ENTRY} (executable) and {len(bridge_files()) - 1} helper modules"
    yield f"  methods.json: {len(document['methods'])} method(s): {names}"
    yield f"  host.json: GIMP will call {' '.join(host['command'])}"
    yield f"  server file: {host['server_file']}"
    places = sorted({" > ".join(p for p in (m["menu"], m["submenu"]) if p) for m in document["methods"]})
    yield "restart GIMP; the filters are under Filters > " + (", ".join(places) or "Artistic > Neural Style")


def uninstall(plugins: Path) -> str:
    target = plugins / PLUGIN
    if not (target / ENTRY).exists():
        raise PluginHostError(f"no GIMP bridge is installed in {plugins}",
                              hint="give the profile folder with --gimp-dir if GIMP uses another one")
    shutil.rmtree(target)
    return f"removed {target}; restart GIMP"


def doctor(plugins: Path, registry: Any) -> Iterator[tuple[bool, str]]:
    """Yield (ok, text) for each check; a problem's text says how to fix it."""
    target = plugins / PLUGIN
    fix = "run `plugin_host gimp install`" + (f" --gimp-dir {plugins.parent}" if plugins.parent != default_gimp_dir()
                                              else "")
    entry = target / ENTRY
    if not entry.is_file():
        yield False, f"no {ENTRY} in {target}: {fix}"
        return
    yield True, f"installed in {target} (folder named like its entry file)"
    yield (os.access(entry, os.X_OK),
           f"{ENTRY} is executable" if os.access(entry, os.X_OK) else f"{ENTRY} is not executable, so GIMP "
           f"ignores it: chmod +x {entry}")
    first = entry.read_bytes().split(b"\n", 1)[0]
    good = first.decode(errors="replace") == SHEBANG
    yield good, f"first line is {SHEBANG}" if good else f"first line is {first!r}, not {SHEBANG!r}: {fix}"
    stale = [name for name, src in bridge_files() if not (target / name).is_file()
             or (target / name).read_bytes() != src.read_bytes()]
    yield not stale, "bridge files match this plugin_host" if not stale else f"outdated or missing: {', '.join(stale)}: {fix}"
    host = _read_json(target / "host.json")
    command = (host or {}).get("command") or []
    runnable = bool(command) and Path(command[0]).is_file() and os.access(command[0], os.X_OK)
    yield runnable, (f"host command {' '.join(command)} exists" if runnable
                     else f"host command {command or '(none recorded)'} is missing or not executable: {fix}")
    recorded = _read_json(target / "methods.json")
    current = methods_document(registry)
    same = bool(recorded) and recorded.get("digest") == current["digest"]
    if same:
        yield True, f"method descriptions up to date ({len(current['methods'])} methods)"
    else:
        before = {m["name"] for m in (recorded or {}).get("methods", [])}
        now = {m["name"] for m in current["methods"]}
        change = ", ".join([f"+{n}" for n in sorted(now - before)] + [f"-{n}" for n in sorted(before - now)])
        yield False, f"method descriptions are out of date ({change or 'parameters changed'}): {fix}"


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
