#!/usr/bin/env bash
# Screenshot of a bridge dialog in a real GIMP 3 (../shared/gimp3 chroot) under Xvfb, for docs/gimp.md.
#   sudo docs/make_gimp_screenshot.sh [OUTPUT.png]     (needs: xvfb xdotool imagemagick on the host)
# Installs the bridge into a temporary profile, opens a sample image in GIMP, calls the AdaIN filter
# interactively with the style taken from another open image, photographs the dialog, presses OK.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${PLUGIN_HOST_SHARED:-$(cd "$repo/.." && pwd)/shared}
out=$(readlink -f "${1:-$repo/docs/gallery/gimp-dialog.png}")
tmp=$(mktemp -d)
trap 'kill $xvfb 2>/dev/null || true; rm -rf "$tmp"' EXIT

display=:97
Xvfb $display -screen 0 1280x1000x24 -nolisten tcp & xvfb=$!
sleep 1
PLUGIN_HOST_WEIGHTS_PATH=$shared/weights "$repo/.venv/bin/plugin_host" gimp install --gimp-dir "$tmp/gimp" >/dev/null
mkdir "$tmp/work"
cat > "$tmp/dialog.py" <<PY
from gi.repository import Gio
def load(p):
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(p))
img, style = load("$repo/docs/samples/lighthouse.jpg"), load("$repo/docs/samples/starry_night.jpg")
proc = Gimp.get_pdb().lookup_procedure("plug-in-plugin-host-adain")
cfg = proc.create_config()
cfg.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
cfg.set_property("image", img)
cfg.set_core_object_array("drawables", img.get_layers())
cfg.set_property("style-layer", style.get_layers()[0])
res = proc.run(cfg)
print("dialog run:", res.index(0))
PY
"$shared/gimp3/run-in-gimp.sh" -p "$tmp/gimp/plug-ins" -w "$tmp/work" --venv "$repo/.venv" --ro-bind "$repo" \
  --ro-bind "$shared" --bind /tmp/.X11-unix -e DISPLAY=$display -e "PLUGIN_HOST_WEIGHTS_PATH=$shared/weights" \
  -e PLUGIN_HOST_SERVER_FILE=/work/server.json -t 300 -f "$tmp/dialog.py" & gimp=$!
for _ in $(seq 120); do
  win=$(DISPLAY=$display xdotool search --name "Arbitrary Style" 2>/dev/null | head -1) && [ -n "$win" ] && break
  sleep 0.5
done
[ -n "${win:-}" ] || { echo "no dialog appeared" >&2; exit 1; }
sleep 2   # let it finish drawing
DISPLAY=$display import -window "$win" "$out"
DISPLAY=$display xdotool windowfocus --sync "$win" key Return
wait $gimp
echo "screenshot: $out"
