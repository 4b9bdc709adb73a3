# Runs in GIMP 3's GUI (driven by tests/gimp/test_gimp_undo.py). Applies a filter in place, then a
# filter into a new layer; after each it writes /work/ready-N and waits until the test has pressed
# Ctrl+Z once in the image window, then records whether that one undo restored everything.
import json
import os
import time

W, H = 64, 48
RGBA = "R'G'B'A u8"
PARAMS = json.loads(os.environ["E2E_PARAMS"])
report = {}


def pixels(layer):
    return layer.get_buffer().get(Gegl.Rectangle.new(0, 0, W, H), 1.0, RGBA, Gegl.AbyssPolicy.CLAMP)


def call(img, layer, **props):
    proc = Gimp.get_pdb().lookup_procedure("plug-in-plugin-host-adain")
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", img)
    cfg.set_core_object_array("drawables", [layer])
    for key, value in {**PARAMS["adain"], **props}.items():
        cfg.set_property(key, value)
    result = proc.run(cfg)
    assert result.index(0) == Gimp.PDBStatusType.SUCCESS, result.index(1)


def wait_for_undo(step, restored):
    open("/work/ready-%d" % step, "w").close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if restored():
            return True
        time.sleep(0.2)
    return False


content = bytes(v for y in range(H) for x in range(W) for v in (x * 4, y * 5, 120, 90 + x + y))
stripes = bytes(v for y in range(H) for x in range(W) for v in ((255, 40, 0, 255) if (x // 4) % 2 else (0, 60, 255, 255)))
img = Gimp.Image.new(W, H, Gimp.ImageBaseType.RGB)
layer = Gimp.Layer.new(img, "Background", W, H, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
img.insert_layer(layer, None, 0)
style = Gimp.Layer.new(img, "style", W, H, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
img.insert_layer(style, None, 1)
for target, data in ((layer, content), (style, stripes)):
    buf = target.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, W, H), RGBA, data)
    buf.flush()
Gimp.Display.new(img)
img.select_ellipse(Gimp.ChannelOps.REPLACE, 12, 8, 40, 30)
before = pixels(layer)

call(img, layer, **{"style-layer": style})
report["changed_in_place"] = pixels(layer) != before
report["one_undo_restores_in_place"] = wait_for_undo(1, lambda: pixels(layer) == before)

call(img, layer, **{"style-layer": style, "output-mode": "new-layer"})
report["new_layer_added"] = len(img.get_layers()) == 3
report["one_undo_removes_new_layer"] = wait_for_undo(
    2, lambda: len(img.get_layers()) == 2 and pixels(layer) == before)
with open("/work/undo-report.json", "w") as f:
    json.dump(report, f)
print("undo:", report)
