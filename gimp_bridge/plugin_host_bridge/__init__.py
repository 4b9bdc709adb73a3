"""The GIMP 3 plug-in (``plugin_host_bridge.py``) and its pure-Python helpers (``phb_*.py``).

GIMP runs the entry file as a script and imports the helpers from its folder; the host imports
this folder as the package ``plugin_host_gimp`` (a different name, so it never collides with the
entry script) and uses the same ``phb_wire``, so both sides share one wire format.
"""
