"""The GIMP 3 plug-in (``plugin_host_bridge.py``) and its pure-Python helpers (``phb_*.py``).

GIMP runs the entry file as a script and imports the helpers from its folder, where ``plugin_host gimp
install`` also puts the host's wire format (``plugin_host/serve/wire.py``) as ``phb_wire.py``. The folder
is installed with plugin_host as the package ``plugin_host_gimp`` only so that the installer finds its
files; the host never imports it.
"""
