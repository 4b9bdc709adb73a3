"""The GIMP 3 plug-in (``plugin_host_bridge.py``) and its pure-Python helpers (``phb_*.py``).

GIMP runs the entry file as a script and imports the helpers from its folder; the host imports
the same helpers as ``plugin_host_bridge.phb_wire`` so both sides share one wire format.
"""
