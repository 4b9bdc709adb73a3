#!/usr/bin/env python3
"""GIMP 3 plug-in: every plugin_host method as a filter, under the Filters submenu its description names
(``menu`` and ``submenu``: Filters > Artistic > Neural Style by default, Filters > Render for a generator).
A generator (a method that reads no image) makes a new image, or a new layer of the open one.

Procedures come from methods.json, written by `plugin_host gimp install`, so GIMP's start-up
never waits for torch. A call reads the active drawable within the selection, sends it to the
warm `plugin_host serve` (started on demand; one-shot `plugin_host serve --stdio` if it
cannot), and writes the result through the shadow buffer: selection and feathering respected,
alpha kept, one undo step. Runs in GIMP's own Python: no numpy, torch or PIL here.
"""
import json
import os
import sys

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GLib, GObject  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import phb_args  # noqa: E402
import phb_client  # noqa: E402
import phb_wire  # noqa: E402

RW = GObject.ParamFlags.READWRITE
INVERT = bytes(range(255, -1, -1))
MAX_STYLE_SIDE = 2048  # methods read styles at 512 px or so; no need to send a poster-sized layer


def _load(name):
    try:
        with open(os.path.join(HERE, name), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


METHODS = {phb_args.procedure_name(m): m for m in _load("methods.json").get("methods", [])}
HOST = _load("host.json")


def add_argument(procedure, spec):
    kind, name, nick, blurb = spec["kind"], spec["name"], spec["nick"], spec["blurb"]
    if kind == "double":
        procedure.add_double_argument(name, nick, blurb, spec["min"], spec["max"], spec["default"], RW)
    elif kind == "int":
        procedure.add_int_argument(name, nick, blurb, spec["min"], spec["max"], spec["default"], RW)
    elif kind == "boolean":
        procedure.add_boolean_argument(name, nick, blurb, spec["default"], RW)
    elif kind == "choice":
        choice = Gimp.Choice.new()
        for number, (value, label) in enumerate(spec["choices"]):
            choice.add(value, number, label, "")
        procedure.add_choice_argument(name, nick, blurb, choice, spec["default"], RW)
    elif kind in ("file", "folder"):
        action = Gimp.FileChooserAction.SELECT_FOLDER if kind == "folder" else Gimp.FileChooserAction.OPEN
        procedure.add_file_argument(name, nick, blurb, action, True, None, RW)
    elif kind == "drawable":
        procedure.add_drawable_argument(name, nick, blurb, True, RW)
    elif kind == "channel":
        procedure.add_channel_argument(name, nick, blurb, True, RW)
    else:
        procedure.add_string_argument(name, nick, blurb, spec["default"], RW)


def fill_dialog(dialog, method):
    """A frame per image input and one for the parameters (see phb_args.dialog_layout)."""
    top = []
    for group in phb_args.dialog_layout(method):
        if group["title"] is None:
            top.extend(group["args"])
            continue
        frame = group["id"] + "-frame"
        dialog.get_label(frame + "-title", group["title"], False, False)
        dialog.fill_box(frame + "-box", group["args"])
        dialog.fill_frame(frame, frame + "-title", False, frame + "-box")
        top.append(frame)
    dialog.fill(top)


def read_values(config, specs):
    values = {}
    for spec in specs:
        value = config.get_property(spec["name"])
        if spec["kind"] in ("file", "folder"):
            value = value.get_path() if value is not None else None
        values[spec["name"]] = value
    return values


def _offsets(drawable):
    found = drawable.get_offsets()
    return tuple(found[-2:])


def _pixels(drawable, x, y, w, h, fmt):
    return drawable.get_buffer().get(Gegl.Rectangle.new(x, y, w, h), 1.0, fmt, Gegl.AbyssPolicy.CLAMP)


def _is_high_bit_depth(drawable):
    channels = (1 if drawable.is_gray() else 3) + (1 if drawable.has_alpha() else 0)
    return drawable.get_bpp() // channels > 1


def _style_pixels(layer):
    """A whole layer of any open image, 8 bit (plenty for a style), shrunk by GEGL when huge."""
    lw, lh = layer.get_width(), layer.get_height()
    scale = min(1.0, MAX_STYLE_SIDE / max(lw, lh))
    w, h = max(1, int(lw * scale)), max(1, int(lh * scale))
    data = layer.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), scale, "R'G'B'A u8", Gegl.AbyssPolicy.CLAMP)
    return phb_wire.raw_image(data, w, h, 4)


def build_images(plan, drawable, region, image):
    """The request's images: the content region as pixels, styles as files or open layers, masks."""
    x, y, w, h = region
    dtype = "f32" if _is_high_bit_depth(drawable) else "u8"
    fmt = "R'G'B'A float" if dtype == "f32" else "R'G'B'A u8"
    images = {"content": phb_wire.raw_image(_pixels(drawable, x, y, w, h, fmt), w, h, 4, dtype)}
    for name, chosen in plan["images"].items():
        items = []
        for kind, value in chosen:
            if kind == "file":
                items.append({"path": value})
            else:
                items.append(_style_pixels(value))
        images[name] = items
    ox, oy = _offsets(drawable)
    for name, (source, channels) in plan["masks"].items():
        if source == "selection":
            sel = _pixels(image.get_selection(), ox + x, oy + y, w, h, "Y u8")
            styles = max((len(v) for v in plan["images"].values()), default=1)
            masks = [sel, sel.translate(INVERT)][:max(styles, 1)]  # the 2nd style gets the outside
        else:
            masks = [_pixels(c, ox + x, oy + y, w, h, "Y u8") for c in channels if c is not None]
        images[name] = [phb_wire.raw_image(m, w, h, 1) for m in masks]
    return images, fmt


class ProgressReporter:
    def __init__(self, title):
        self.title = title

    def __call__(self, event):
        kind = event.get("event")
        if kind == "stage":
            Gimp.progress_set_text(f"{self.title}: {event.get('stage')}")
        elif kind == "progress" and event.get("total"):
            Gimp.progress_update(min(1.0, event["step"] / event["total"]))
        elif kind == "heartbeat" and event.get("position"):
            Gimp.progress_set_text(f"{self.title}: waiting, {event['position']} job(s) ahead")
            Gimp.progress_pulse()
        elif kind in ("queued", "started", "heartbeat"):
            Gimp.progress_pulse()


def call_host(body, on_event):
    """Warm server first; if none can be started, one ``plugin_host serve --stdio`` process."""
    command = phb_client.host_command(HOST.get("command"))
    mode = os.environ.get("PLUGIN_HOST_BRIDGE_MODE", "auto")
    if mode != "oneshot":
        server_file = os.environ.get("PLUGIN_HOST_SERVER_FILE") or HOST.get("server_file")
        try:
            info = phb_client.connect(server_file, command)
        except (phb_client.HostError, OSError) as err:
            if mode == "server":
                raise
            sys.stderr.write(f"plugin_host_bridge: no server ({err}); running one-shot\n")
        else:
            return phb_client.run_job(info, body, on_event)
    return phb_client.run_once(command, body, on_event)


def fail(procedure, message, status=Gimp.PDBStatusType.EXECUTION_ERROR):
    return procedure.new_return_values(status, GLib.Error(message))


def run(procedure, run_mode, image, drawables, config, data):
    method = METHODS[procedure.get_name()]
    title = method.get("title") or method["name"]
    if not phb_args.reads_layer(method):
        return run_generator(procedure, run_mode, image, config, method, title)
    if len(drawables) != 1:
        return fail(procedure, f"{title} works on one layer: select exactly one", Gimp.PDBStatusType.CALLING_ERROR)
    if run_mode == Gimp.RunMode.INTERACTIVE and not _dialog(procedure, config, method, title):
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
    specs = phb_args.argument_specs(method)
    try:
        plan = phb_args.collect(method, read_values(config, specs))
    except ValueError as err:
        return fail(procedure, str(err), Gimp.PDBStatusType.CALLING_ERROR)
    drawable = drawables[0]
    if drawable.is_group():
        return fail(procedure, f"{title} works on a layer, not on a layer group: select a layer inside it",
                    Gimp.PDBStatusType.CALLING_ERROR)
    if plan["output"] == "new-layer" and not isinstance(drawable, Gimp.Layer):
        return fail(procedure, "a new layer can only be made from a layer; choose 'replace'",
                    Gimp.PDBStatusType.CALLING_ERROR)
    # Two styles split by the selection: the whole layer changes, so lift the selection for the merge.
    styles = max((len(v) for v in plan["images"].values()), default=0)
    lift = styles > 1 and any(source == "selection" for source, _ in plan["masks"].values())
    if lift:
        region = (0, 0, drawable.get_width(), drawable.get_height())
    else:
        inside, x, y, w, h = drawable.mask_intersect()
        if not inside:
            return fail(procedure, "the selection does not touch the layer: select part of it, or nothing")
        region = (x, y, w, h)

    def work():
        images, fmt = build_images(plan, drawable, region, image)
        keep_size = plan["output"] == "new-image"  # e.g. an upscaler's result at its own size
        body = phb_wire.encode_job(method["name"], plan["params"], images, blend=plan["blend"],
                                   output={"size": "result"} if keep_size else None)
        layout, pixels = call_host(body, ProgressReporter(title))
        if not keep_size:
            write_result(image, drawable, region, fmt, pixels, plan["output"] == "new-layer", title, lift)
            return None
        created = image_from_result(layout, pixels, fmt, drawable, title)
        if run_mode == Gimp.RunMode.INTERACTIVE:
            Gimp.Display.new(created)
        return created

    return run_job(procedure, method, title, work)


def run_job(procedure, method, title, work):
    """``work()`` (talks to the host; returns the image it created, or None) under GIMP's progress bar.
    Cancel, the host's errors and any failure of the bridge become the procedure's answer, never a crash."""
    Gimp.progress_init(f"{title}: starting")
    try:
        created = work()
    except phb_client.Cancelled:
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
    except phb_client.HostError as err:
        return fail(procedure, f"{title}: {phb_args.error_message(method, err)}")
    except Exception as err:  # never let GIMP see a crash: say what broke
        return fail(procedure, f"{title}: the GIMP bridge failed: {type(err).__name__}: {err}")
    finally:
        Gimp.progress_end()
    Gimp.displays_flush()
    return Gimp.ValueArray.new_from_values([GObject.Value(Gimp.PDBStatusType, Gimp.PDBStatusType.SUCCESS),
                                            GObject.Value(Gimp.Image, created)])


def _dialog(procedure, config, method, title):
    """Show the method's dialog; whether the user pressed OK."""
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi

    GimpUi.init(procedure.get_name())
    dialog = GimpUi.ProcedureDialog.new(procedure, config, title)
    fill_dialog(dialog, method)
    accepted = dialog.run()
    dialog.destroy()
    return accepted


def run_generator(procedure, run_mode, image, config, method, title):
    """A method that reads no image (a generator): its picture becomes a new image, or a new layer on top
    of the open image. Runs with no image open too (its procedure is always sensitive)."""
    if run_mode == Gimp.RunMode.INTERACTIVE and not _dialog(procedure, config, method, title):
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
    try:
        plan = phb_args.collect(method, read_values(config, phb_args.argument_specs(method)))
    except ValueError as err:
        return fail(procedure, str(err), Gimp.PDBStatusType.CALLING_ERROR)
    if plan["output"] == "new-layer" and image is None:
        return fail(procedure, f"{title}: open an image to add the result as a layer, or choose a new image",
                    Gimp.PDBStatusType.CALLING_ERROR)
    fmt = "R'G'B'A u8"

    def work():
        images = {name: [{"path": v} if kind == "file" else _style_pixels(v) for kind, v in chosen]
                  for name, chosen in plan["images"].items()}
        body = phb_wire.encode_job(method["name"], plan["params"], images, blend=plan["blend"],
                                   output={"size": "result", "dtype": "u8"})
        layout, pixels = call_host(body, ProgressReporter(title))
        if plan["output"] == "new-layer":
            add_layer(image, layout, pixels, fmt, title)
            return None
        created = image_from_result(layout, pixels, fmt, None, title)
        if run_mode == Gimp.RunMode.INTERACTIVE:
            Gimp.Display.new(created)
        return created

    return run_job(procedure, method, title, work)


def add_layer(image, layout, pixels, fmt, title):
    """The result as a new layer on top of ``image``, at its own size, in one undo step."""
    w, h = layout["width"], layout["height"]
    image.undo_group_start()
    try:
        layer = Gimp.Layer.new(image, title, w, h, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
        image.insert_layer(layer, None, 0)
        buffer = layer.get_buffer()
        buffer.set(Gegl.Rectangle.new(0, 0, w, h), fmt, pixels)
        buffer.flush()
        layer.update(0, 0, w, h)
    finally:
        image.undo_group_end()


def image_from_result(layout, pixels, fmt, drawable, title):
    """A new image holding the result at the size the method returned (a grayscale source stays gray)."""
    w, h = layout["width"], layout["height"]
    precision = Gimp.Precision.FLOAT_NON_LINEAR if fmt.endswith("float") else Gimp.Precision.U8_NON_LINEAR
    created = Gimp.Image.new_with_precision(w, h, Gimp.ImageBaseType.RGB, precision)
    layer = Gimp.Layer.new(created, title, w, h, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
    created.insert_layer(layer, None, 0)
    buffer = layer.get_buffer()
    buffer.set(Gegl.Rectangle.new(0, 0, w, h), fmt, pixels)
    buffer.flush()
    if drawable is not None and drawable.is_gray():
        created.convert_grayscale()
    created.clean_all()  # nothing to undo in a new image
    return created


def write_result(image, drawable, region, fmt, pixels, new_layer, title, lift):
    x, y, w, h = region
    image.undo_group_start()
    saved = None
    try:
        if new_layer:
            copy = Gimp.Layer.new_from_drawable(drawable, image)
            copy.set_name(title)
            image.insert_layer(copy, drawable.get_parent(), image.get_item_position(drawable))
            drawable = copy
        if lift and not Gimp.Selection.is_empty(image):
            saved = Gimp.Selection.save(image)
            Gimp.Selection.none(image)
        shadow = drawable.get_shadow_buffer()
        shadow.set(Gegl.Rectangle.new(x, y, w, h), fmt, pixels)
        shadow.flush()
        drawable.merge_shadow(True)
        drawable.update(x, y, w, h)
    finally:
        if saved is not None:
            image.select_item(Gimp.ChannelOps.REPLACE, saved)
            image.remove_channel(saved)
        image.undo_group_end()


class PluginHostBridge(Gimp.PlugIn):
    def do_query_procedures(self):
        return list(METHODS)

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        method = METHODS[name]
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        procedure.set_image_types("RGB*, GRAY*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE if phb_args.reads_layer(method)
                                       else Gimp.ProcedureSensitivityMask.ALWAYS)  # a generator needs no image
        procedure.set_menu_label(phb_args.menu_label(method))
        procedure.add_menu_path(phb_args.menu_path(method))
        procedure.set_documentation(method.get("title") or name, method.get("description", ""), name)
        procedure.set_attribution("plugin_host", "plugin_host contributors", "2025")
        for spec in phb_args.argument_specs(method):
            try:
                add_argument(procedure, spec)
            except Exception as err:  # one odd parameter must not cost the whole filter: the host default applies
                sys.stderr.write(f"plugin_host_bridge: {name}: skipped argument {spec['name']}: {err}\n")
        procedure.add_image_return_value("new-image", "New image", "the result, when output-mode is new-image",
                                         True, RW)
        return procedure


Gimp.main(PluginHostBridge.__gtype__, sys.argv)
