"""The warm server (``plugin_host serve``) the GIMP bridge talks to; see :mod:`.httpd` for the API."""
