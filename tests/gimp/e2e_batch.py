# Runs inside GIMP 3 (run-in-gimp.sh -f), driven by tests/gimp/test_gimp_e2e.py. python-fu-eval has
# imported Gimp, Gegl, GLib, GObject, Gio and sys. Everything goes through the PDB, as another
# plug-in or a batch user would call the bridge. Pixels are checked on the host with Pillow;
# high bit depth and grayscale are checked here (PNG cannot carry float pixels to Pillow).
import json
import os
import time

from gi.repository import Gio

W, H = 64, 48
RGBA = "R'G'B'A u8"
PDB = Gimp.get_pdb()
PARAMS = json.loads(os.environ["E2E_PARAMS"])
timings = {}


def new_image(pixels, kind=Gimp.ImageType.RGBA_IMAGE, base=Gimp.ImageBaseType.RGB, name="Background"):
    img = Gimp.Image.new(W, H, base)
    layer = Gimp.Layer.new(img, name, W, H, kind, 100.0, Gimp.LayerMode.NORMAL)
    img.insert_layer(layer, None, 0)
    buf = layer.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, W, H), RGBA, pixels)
    buf.flush()
    return img, layer


def save(img, path):
    assert Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, img, Gio.File.new_for_path(path), None), path


def call(method, img, layer, **props):
    name = "plug-in-plugin-host-" + method
    proc = PDB.lookup_procedure(name)
    assert proc is not None, name + " is not registered: is the bridge installed and executable?"
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", img)
    cfg.set_core_object_array("drawables", [layer])
    for key, value in {**PARAMS.get(method, {}), **props}.items():
        if key.endswith("-file") and isinstance(value, str):
            value = Gio.File.new_for_path(value)
        cfg.set_property(key, value)
    started = time.monotonic()
    result = proc.run(cfg)
    timings.setdefault(method, []).append(round(time.monotonic() - started, 2))
    status = result.index(0)
    assert status == Gimp.PDBStatusType.SUCCESS, "%s failed: %s" % (name, result.index(1))
    return result


# Every installed method is a procedure (methods a later plugin adds included), with all its parameters.
with open("/plug-ins/plugin_host_bridge/methods.json") as f:
    for method in json.load(f)["methods"]:
        proc = PDB.lookup_procedure("plug-in-plugin-host-" + method["name"].replace("_", "-"))
        assert proc is not None, method["name"] + " has no procedure"
        names = {a.name for a in proc.get_arguments()}
        expected = set()
        for p in method["params"]:
            arg = p["name"].replace("_", "-")
            blend = p["kind"] == "weights" and p.get("choices")  # one slider per name
            expected |= {arg + "-" + c for c in p["choices"]} if blend else {arg}
        missing = expected - names
        assert not missing, (method["name"], missing)

content = bytes(v for y in range(H) for x in range(W) for v in (x * 4, y * 5, 120, 90 + (x + y) * 1))
stripes = bytes(v for y in range(H) for x in range(W) for v in ((255, 40, 0, 255) if (x // 4) % 2 else (0, 60, 255, 255)))

# 1. Gatys, style from a layer of another open image, elliptical selection, in place.
img, layer = new_image(content)
save(img, "/work/in.png")
style_img, style_layer = new_image(stripes, name="stripes")
img.select_ellipse(Gimp.ChannelOps.REPLACE, 12, 8, 40, 30)
call("gatys", img, layer, **{"style-layer": style_layer})
save(img, "/work/out-gatys.png")

# 2. AdaIN, style from a file, rectangular selection, result in a new layer.
img2, layer2 = new_image(content)
img2.select_rectangle(Gimp.ChannelOps.REPLACE, 8, 6, 30, 20)
call("adain", img2, layer2, **{"style-file": "/work/style.png", "output-mode": "new-layer"})
names = [l.get_name() for l in img2.get_layers()]
assert len(names) == 2 and names[1] == "Background", names
layer2.set_visible(False)  # export the new layer alone (export merges the visible layers)
save(img2, "/work/out-adain.png")

# 3. High bit depth and grayscale: the float path keeps alpha exactly, only the selection changes.
img3, layer3 = new_image(content)
img3.convert_precision(Gimp.Precision.FLOAT_NON_LINEAR)
img3.convert_grayscale()
layer3 = img3.get_layers()[0]
fmt = "Y'A float"
rect = Gegl.Rectangle.new(0, 0, W, H)
before = layer3.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.CLAMP)
img3.select_rectangle(Gimp.ChannelOps.REPLACE, 0, 0, 32, H)
call("adain", img3, layer3, **{"style-layer": style_layer})
after = layer3.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.CLAMP)
import array
b, a = array.array("f", before), array.array("f", after)
changed_inside = sum(abs(b[(y * W + x) * 2] - a[(y * W + x) * 2]) > 1e-3 for y in range(H) for x in range(32))
changed_outside = sum(b[(y * W + x) * 2] != a[(y * W + x) * 2] for y in range(H) for x in range(32, W))
alpha_same = all(b[i] == a[i] for i in range(1, len(b), 2))
assert changed_inside > 32 * H // 2 and changed_outside == 0 and alpha_same, (changed_inside, changed_outside, alpha_same)
fractional = any(abs(v * 255 - round(v * 255)) > 1e-3 for v in a[0:64 * 2:2])  # not quantised to 8 bit

# 4. AdaIN, two styles split by the selection (the first inside, the second outside), on an RGB
#    layer without alpha: the whole layer changes, and the selection is left as it was.
img4, layer4 = new_image(content, kind=Gimp.ImageType.RGB_IMAGE)
img4.select_rectangle(Gimp.ChannelOps.REPLACE, 16, 12, 32, 24)
call("adain", img4, layer4, **{"style-layer": style_layer, "style-2-file": "/work/style.png",
                               "mask-source": "selection"})
assert list(Gimp.Selection.bounds(img4))[1:] == [True, 16, 12, 48, 36], Gimp.Selection.bounds(img4)
assert img4.get_channels() == [], "the saved selection channel was left behind"
save(img4, "/work/out-masks.png")

# 5. AdaIN with its mask from a channel (left half).
channel = Gimp.Channel.new(img4, "left", W, H, 100.0, Gegl.Color.new("black"))
img4.insert_channel(channel, None, 0)
cbuf = channel.get_buffer()
cbuf.set(Gegl.Rectangle.new(0, 0, W // 2, H), "Y u8", bytes([255]) * (W // 2 * H))
cbuf.flush()
Gimp.Selection.none(img4)
call("adain", img4, layer4, **{"style-layer": style_layer, "mask-source": "channels", "mask-channel": channel})

# 6. A new image at the method's own size: Gatys at max-size 32 returns 32x24 for the 64x48 layer,
#    and the source image is left alone.
img5, layer5 = new_image(content)
result = call("gatys", img5, layer5, **{"style-layer": style_layer, "output-mode": "new-image"})
created = result.index(1)
assert (created.get_width(), created.get_height()) == (32, 24), (created.get_width(), created.get_height())
assert layer5.get_buffer().get(Gegl.Rectangle.new(0, 0, W, H), 1.0, RGBA, Gegl.AbyssPolicy.CLAMP) == content
assert len(created.get_layers()) == 1 and created.get_layers()[0].has_alpha()

# 7. Gated-GAN with the user's own model: its styles are sliders; each style, and a blend, restyles the layer.
blend_args = sorted(a.name for a in PDB.lookup_procedure("plug-in-plugin-host-gated-gan").get_arguments()
                    if a.name.startswith("style-blend-"))
assert {"style-blend-ink", "style-blend-sun"} <= set(blend_args), blend_args  # with the shipped model's four
gated = {}
for name, weights in {"ink": {"style-blend-ink": 1.0}, "sun": {"style-blend-sun": 1.0},
                      "blend": {"style-blend-ink": 0.5, "style-blend-sun": 0.5}}.items():
    img6, layer6 = new_image(content)
    call("gated-gan", img6, layer6, **weights)
    gated[name] = layer6.get_buffer().get(Gegl.Rectangle.new(0, 0, W, H), 1.0, RGBA, Gegl.AbyssPolicy.CLAMP)
    img6.delete()
assert len({content, *gated.values()}) == 4, "the gated-gan styles and the blend gave identical pixels"

# 8. StyleGAN Render (reads no layer) with the user's own generator: a new image at the generator's size.
result = call("stylegan", img5, layer5, **{"seeds": "7", "output-mode": "new-image"})
rendered = result.index(1)
assert (rendered.get_width(), rendered.get_height()) == (32, 32), (rendered.get_width(), rendered.get_height())
pixels = rendered.get_layers()[0].get_buffer().get(Gegl.Rectangle.new(0, 0, 32, 32), 1.0, "R'G'B' u8",
                                                   Gegl.AbyssPolicy.CLAMP)
assert len(set(pixels[i:i + 3] for i in range(0, len(pixels), 3))) > 50, "the rendered picture is nearly flat"
rendered.delete()

# 9. StyleGAN Restyle on a layer: projected (2 steps), redrawn with a seed's fine styles, back at the layer's size.
img7, layer7 = new_image(content)
call("stylegan-project", img7, layer7, **{"style-seed": 5})
restyled = layer7.get_buffer().get(Gegl.Rectangle.new(0, 0, W, H), 1.0, RGBA, Gegl.AbyssPolicy.CLAMP)
assert restyled != content and len(restyled) == len(content)
img7.delete()

with open("/work/report.json", "w") as f:
    json.dump({"timings": timings, "float_inside_changed": changed_inside, "float_fractional": fractional}, f)
for image in (img, img2, img3, img4, img5, created, style_img):
    image.delete()
print("e2e: batch part done", json.dumps(timings))
