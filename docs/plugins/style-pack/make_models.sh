#!/bin/sh
# Fill plugin_host_example_styles/models/ with a stand-in for the model you would ship: a half-width
# perceptual style network trained for two steps on the bundled samples (it only tints the picture).
# A real pack runs the same two commands on its own painting and photos, with the default settings.
#
#   sh make_models.sh [STYLE_IMAGE [PHOTOS_FOLDER]]
set -e
here=$(dirname "$0")
style=${1:-$here/../../samples/great_wave.jpg}
photos=${2:-$here/../../samples}
build=$(mktemp -d)
plugin_host train perceptual --style "$style" --content-dir "$photos" --name example-wave \
    --out "$build/example-wave.pth" --iterations 2 --batch-size 1 --crop 64 --style-size 64 --width half \
    --quiet
plugin_host weights package "$build/example-wave.pth" --into "$here/plugin_host_example_styles/models"
rm -rf "$build"
