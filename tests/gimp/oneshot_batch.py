# Runs inside GIMP 3 (driven by test_gimp_e2e.py) with PLUGIN_HOST_BRIDGE_MODE=oneshot: the bridge
# must do the call through one `plugin_host serve --stdio` process, starting no server. Also checks
# that errors come back with the host's text, and that a layer group is refused with a message.
import json
import os

from gi.repository import Gio

W, H = 32, 24
PARAMS = json.loads(os.environ["E2E_PARAMS"])
PDB = Gimp.get_pdb()


def call(img, layer, **props):
    proc = PDB.lookup_procedure("plug-in-plugin-host-adain")
    cfg = proc.create_config()
    cfg.set_property("image", img)
    cfg.set_core_object_array("drawables", [layer])
    for key, value in {**PARAMS["adain"], **props}.items():
        cfg.set_property(key, value)
    result = proc.run(cfg)
    return result.index(0), (result.index(1) if result.index(0) != Gimp.PDBStatusType.SUCCESS else "")


img = Gimp.Image.new(W, H, Gimp.ImageBaseType.RGB)
layer = Gimp.Layer.new(img, "Background", W, H, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
img.insert_layer(layer, None, 0)
buf = layer.get_buffer()
data = bytes(v for y in range(H) for x in range(W) for v in (x * 8, y * 10, 100, 255))
buf.set(Gegl.Rectangle.new(0, 0, W, H), "R'G'B'A u8", data)
buf.flush()
status, message = call(img, layer, **{"style-layer": layer})
assert status == Gimp.PDBStatusType.SUCCESS, message
after = layer.get_buffer().get(Gegl.Rectangle.new(0, 0, W, H), 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.CLAMP)
assert after != data, "the one-shot call changed nothing"
assert not os.path.exists("/work/run/server.json"), "one-shot mode started a server"

status, message = call(img, layer)  # no style image at all
assert status == Gimp.PDBStatusType.CALLING_ERROR and "choose a file or an open layer" in message, message
with open("/work/not-an-image.png", "w") as f:  # GIMP itself refuses a file that does not exist
    f.write("text")
status, message = call(img, layer, **{"style-file": Gio.File.new_for_path("/work/not-an-image.png")})
assert status == Gimp.PDBStatusType.EXECUTION_ERROR and "not an image format Pillow knows" in message, message
assert "Hint: use a PNG, JPEG, TIFF or WebP file" in message, message
group = Gimp.GroupLayer.new(img, "group")
img.insert_layer(group, None, 0)
status, message = call(img, group, **{"style-layer": layer})
assert "not on a layer group" in message, message
img.delete()
print("oneshot: ok")
