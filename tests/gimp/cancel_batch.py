# Runs inside GIMP 3 (driven by test_gimp_cancel.py): starts a long Gatys call. The test kills the
# plug-in mid-job, as GIMP does when the user cancels its progress; the call must then fail here
# (never hang) while the host cancels the job.
W, H = 64, 48
img = Gimp.Image.new(W, H, Gimp.ImageBaseType.RGB)
layer = Gimp.Layer.new(img, "Background", W, H, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
img.insert_layer(layer, None, 0)
proc = Gimp.get_pdb().lookup_procedure("plug-in-plugin-host-gatys")
cfg = proc.create_config()
cfg.set_property("image", img)
cfg.set_core_object_array("drawables", [layer])
cfg.set_property("style-layer", layer)
cfg.set_property("iterations", 10000)
cfg.set_property("max-size", 48)
result = proc.run(cfg)
assert result.index(0) != Gimp.PDBStatusType.SUCCESS, "the call finished although its plug-in was killed"
img.delete()
print("cancel: the call ended with", result.index(0))
import os, time  # noqa: E401,E402 - keep GIMP (and so the server) alive until the test has looked
deadline = time.monotonic() + 60
while not os.path.exists("/work/done") and time.monotonic() < deadline:
    time.sleep(0.1)
