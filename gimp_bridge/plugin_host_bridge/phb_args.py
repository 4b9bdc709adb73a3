"""From a method's JSON description to GIMP procedure arguments, and from their values to a request.

Pure Python, no GIMP: the plug-in turns each spec into one ``add_*_argument`` call and hands
the values it reads back to :func:`collect`. Parameters are never restated here; the
description (``plugin_host info METHOD --json``) drives everything, so a method added later
appears in GIMP with no change to the bridge.
"""
from __future__ import annotations

SLOTS = 2  # image slots offered for an input that takes several images (e.g. two blended styles)
INT_LIMIT = 2**31 - 1
FLOAT_LIMIT = 1e15
AUTOMATIC = "automatic"  # the dialog's choice for a parameter the method fills in itself (its default is None)
OUTPUT_CHOICES = (("replace", "Replace the layer's pixels"), ("new-layer", "Result in a new layer"),
                  ("new-image", "Result in a new image, at the method's own size"))
#: A generator (a method that reads no image) can only add its picture: as a new image or a new layer.
GENERATOR_OUTPUT_CHOICES = (("new-image", "Result in a new image"),
                            ("new-layer", "Result in a new layer of the open image"))
BUTTON_LETTERS = "ochrsl"
MASK_SOURCES = (("none", "No masks"), ("selection", "Selection (inverse for the 2nd style)"),
                ("channels", "Channels chosen below"))


def procedure_name(method: dict) -> str:
    return "plug-in-plugin-host-" + canonical(method["name"])


def canonical(name: str) -> str:
    """GIMP argument and procedure names: lower case, digits and dashes."""
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def menu_path(method: dict) -> str:
    """``<Image>/Filters/MENU/SUBMENU`` from the method's ``menu`` and ``submenu`` (``""``: no submenu)."""
    submenu = method.get("submenu", "Neural Style")
    return "<Image>/Filters/" + (method.get("menu") or "Artistic") + (f"/{submenu}" if submenu else "")


def reads_layer(method: dict) -> bool:
    """Whether the method reads the active layer (it has a content input); a generator does not."""
    return any(spec.get("role") == "content" for spec in method.get("inputs", []))


def menu_label(method: dict) -> str:
    return (method.get("title") or method["name"]) + "..."


def error_message(method: dict, error) -> str:
    """The host's error as the dialog's user should read it: a bad parameter named by its label
    ("Blur σ: out of range …"), not by the Python name the host knows it by."""
    named = {spec["name"]: spec.get("label") or spec["name"]
             for spec in [*method.get("params", []), *method.get("inputs", [])]}
    param, detail = getattr(error, "param", None), getattr(error, "detail", None)
    if param not in named or not detail:
        return str(error)
    hint = getattr(error, "hint", None)
    return f"{named[param]}: {detail}" + (f"\nHint: {hint}" if hint else "")


def _slot_name(input_name: str, slot: int, suffix: str) -> str:
    return canonical(input_name) + ("" if slot == 0 else f"-{slot + 1}") + "-" + suffix


def argument_specs(method: dict) -> list[dict]:
    """One dict per GIMP argument, in dialog order: output mode, image inputs, then parameters.

    Keys: ``kind`` (double, int, boolean, choice, string, file, folder, drawable, channel),
    ``name``, ``nick``, ``blurb``, ``default``; ``min``/``max`` for numbers; ``choices``
    (list of (nick, label)) for choices; ``source`` says where the value goes.
    """
    output = "new-image" if method.get("creates_image") or not reads_layer(method) else "replace"
    choices = OUTPUT_CHOICES if reads_layer(method) else GENERATOR_OUTPUT_CHOICES
    specs = [{"kind": "choice", "name": "output-mode", "nick": "Output", "blurb": "where the result goes",
              "choices": list(choices), "default": output, "source": ("bridge", "output")}]
    for spec in method.get("inputs", []):
        if spec.get("role") == "content":
            continue  # the active drawable
        slots = SLOTS if spec.get("multiple") else 1
        label = spec.get("label") or spec["name"]
        if spec.get("role") == "mask":
            specs.append({"kind": "choice", "name": canonical(spec["name"]) + "-source", "nick": "Source",
                          "blurb": f"{label}: {spec.get('help', '')}", "choices": list(MASK_SOURCES), "default": "none",
                          "source": ("mask-source", spec["name"])})
            for slot in range(slots):
                specs.append({"kind": "channel", "name": _slot_name(spec["name"], slot, "channel"),
                              "nick": f"Channel {slot + 1}", "blurb": f"mask for style {slot + 1}",
                              "default": None, "source": ("mask", spec["name"], slot)})
            continue
        for slot in range(slots):
            number = f" {slot + 1}" if slots > 1 else ""
            specs.append({"kind": "file", "name": _slot_name(spec["name"], slot, "file"),
                          "nick": f"File{number}", "blurb": f"{label}: {spec.get('help', '')}", "default": None,
                          "source": ("image-file", spec["name"], slot)})
            specs.append({"kind": "drawable", "name": _slot_name(spec["name"], slot, "layer"),
                          "nick": f"Open layer{number}",
                          "blurb": "a layer of any open image; used instead of the file when set",
                          "default": None, "source": ("image-layer", spec["name"], slot)})
            if spec.get("weighted") and slots > 1:
                specs.append({"kind": "double", "name": _slot_name(spec["name"], slot, "blend"),
                              "nick": f"Weight{number}", "blurb": "blend weight (normalised to sum 1)",
                              "min": 0.0, "max": 100.0, "default": 1.0, "source": ("blend", spec["name"], slot)})
    taken = {s["name"] for s in specs} | {"run-mode", "image", "drawables"}
    for param in method.get("params", []):
        for arg in _param_specs(param):
            if arg["name"] in taken:  # never shadow the bridge's own arguments
                arg["name"] = "param-" + arg["name"]
            taken.add(arg["name"])
            specs.append(arg)
    return _with_mnemonics(specs)


def _with_mnemonics(specs: list[dict]) -> list[dict]:
    """Give each dialog label its own keyboard mnemonic (``_X``), sparing the letters of the dialog's
    buttons (_OK, _Cancel, _Help, _Reset, _Load/_Save Settings); GIMP warns about labels without one
    and about clashes. A label whose letters are all taken gets none."""
    used = set(BUTTON_LETTERS)
    for spec in specs:
        text = spec["nick"].replace("_", "__")  # a literal underscore
        free = [i for i, c in enumerate(text) if c.isalnum() and c.lower() not in used]
        if free:
            used.add(text[free[0]].lower())
            text = text[:free[0]] + "_" + text[free[0]:]
        spec["nick"] = text
    return specs


def dialog_layout(method: dict) -> list[dict]:
    """How the dialog groups the arguments: the output mode alone, then a frame per image input
    and one for the parameters. Each group: ``id``, ``title`` (None: no frame), ``args`` (names)."""
    groups: list[dict] = []
    for spec in argument_specs(method):
        source = spec["source"]
        if source[0] == "bridge":
            key, title = "output", None
        elif source[0] == "param":
            key, title = "parameters", "Parameters"
        else:
            key = canonical(source[1])
            title = next((i.get("label") or i["name"] for i in method.get("inputs", []) if i["name"] == source[1]),
                         source[1])
        if not groups or groups[-1]["id"] != key:
            groups.append({"id": key, "title": title, "args": []})
        groups[-1]["args"].append(spec["name"])
    return groups


def _param_specs(param: dict) -> list[dict]:
    """The GIMP arguments of one parameter: one, or for a blend of weights one slider per name."""
    if param.get("kind") == "weights" and param.get("choices"):
        default = param.get("default") or {}
        label = param.get("label") or param["name"]
        return [{"name": canonical(f"{param['name']}-{choice}"), "nick": f"{label}: {choice}",
                 "blurb": f"weight of {choice} ({param.get('help', '')}); all 0 = not used", "kind": "double",
                 "min": 0.0, "max": float(param.get("max") or 1.0), "default": float(default.get(choice, 0.0)),
                 "source": ("param", param["name"], choice)} for choice in param["choices"]]
    return [_param_spec(param)]


def _param_spec(param: dict) -> dict:
    kind, default = param.get("kind"), param.get("default")
    base = {"name": canonical(param["name"]), "nick": param.get("label") or param["name"],
            "blurb": param.get("help", ""), "source": ("param", param["name"])}
    if kind in ("float", "int"):
        lo, hi = param.get("min"), param.get("max")
        limit = FLOAT_LIMIT if kind == "float" else INT_LIMIT
        lo = -limit if lo is None else max(lo, -limit)  # GIMP's ints are 32-bit
        hi = limit if hi is None else min(hi, limit)
        if default is None:
            if lo <= 0:  # no spare value to mean "automatic": let the user type it
                return dict(base, kind="string", default="", blurb=base["blurb"] + " (empty = automatic)",
                            parse=kind)
            lo, default = 0, 0
            base["unset"] = 0
            base["blurb"] += " (0 = automatic)"
        return dict(base, kind="double" if kind == "float" else "int", min=lo, max=hi, default=default)
    if kind == "bool":
        return dict(base, kind="boolean", default=bool(default))
    if kind in ("choice", "model") and param.get("choices"):
        choices = [(c, c) for c in param["choices"]]
        if kind == "choice" and default is None:  # the method decides (e.g. from the chosen model): say so first
            unset = next(n for n in (AUTOMATIC, "-" + AUTOMATIC) if n not in param["choices"])
            return dict(base, kind="choice", choices=[(unset, "Automatic"), *choices], default=unset, unset=unset)
        if default not in param["choices"]:
            default = param["choices"][0]
        return dict(base, kind="choice", choices=choices, default=default)
    if kind == "path":
        return dict(base, kind="folder" if param.get("directory") else "file", default=None)
    if kind == "list":
        text = ",".join(str(v) for v in default) if isinstance(default, list) else ""
        return dict(base, kind="string", default=text, blurb=base["blurb"] + " (comma-separated)")
    return dict(base, kind="string", default="" if default is None else str(default))


def collect(method: dict, values: dict) -> dict:
    """Turn argument values (by argument name) into a plan for one call.

    Files arrive as paths (str or None), layers and channels as opaque objects (or None).
    Returns ``{"params", "images": {input: [("file", path) | ("layer", obj)]}, "blend",
    "masks": {input: (source, [channel or None])}, "output"}``; raises ValueError with a
    message for the user when a required image is missing.
    """
    plan: dict = {"params": {}, "images": {}, "blend": {}, "masks": {},
                  "output": "replace" if reads_layer(method) else "new-image"}
    slots: dict = {}
    for spec in argument_specs(method):
        value = values.get(spec["name"], spec.get("default"))
        where = spec["source"]
        if where[0] == "bridge":
            plan["output"] = value or spec["default"]
        elif where[0] == "param" and len(where) == 3:  # one slider of a blend; only weights above 0 are sent
            if value:
                plan["params"].setdefault(where[1], {})[where[2]] = float(value)
        elif where[0] == "param":
            if spec.get("unset") is not None and value == spec["unset"]:
                continue
            if spec["kind"] == "string" and value in ("", None) and (spec.get("parse") or spec["default"] == ""):
                continue
            if spec["kind"] in ("file", "folder") and not value:
                continue
            plan["params"][where[1]] = _parse(value, spec.get("parse"))
        elif where[0] == "mask-source":
            plan["masks"].setdefault(where[1], [value or "none", []])[0] = value or "none"
        elif where[0] == "mask":
            plan["masks"].setdefault(where[1], ["none", []])[1].append(value)
        else:
            slot = slots.setdefault((where[1], where[2]), {})
            slot[where[0]] = value
    for (name, _), slot in sorted(slots.items()):
        chosen = ("layer", slot["image-layer"]) if slot.get("image-layer") is not None else (
            ("file", slot["image-file"]) if slot.get("image-file") else None)
        if chosen is None:
            continue
        plan["images"].setdefault(name, []).append(chosen)
        if "blend" in slot:
            plan["blend"].setdefault(name, []).append(float(slot["blend"]))
    for spec in method.get("inputs", []):
        if spec.get("role") in ("content", "mask") or not spec.get("required"):
            continue
        if not plan["images"].get(spec["name"]):
            label = (spec.get("label") or spec["name"]).lower()
            raise ValueError(f"{method.get('title') or method['name']} needs {label}: choose a file or an open "
                             f"layer for '{spec.get('label') or spec['name']}'")
    plan["masks"] = {k: (v[0], v[1]) for k, v in plan["masks"].items() if v[0] != "none"}
    for name, (source, channels) in plan["masks"].items():
        if source == "channels" and not any(c is not None for c in channels):
            raise ValueError(f"'{name}' is set to channels but no channel is chosen")
    return plan


def _parse(value, kind: str | None):
    if kind is None or not isinstance(value, str):
        return value
    return value.strip()  # the host validates and converts text like the command line
