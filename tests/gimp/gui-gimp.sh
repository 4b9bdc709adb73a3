#!/bin/sh
# Bound over gimp-console-3.0 inside the chroot by test_gimp_undo.py: the same batch run, but in
# GIMP's GUI binary (no -i) on an Xvfb display, so Edit > Undo can be pressed from outside.
for a in "$@"; do shift; [ "$a" = "-i" ] || set -- "$@" "$a"; done
exec /usr/bin/gimp-3.0 --no-splash "$@"
