"""Method descriptions -> GIMP procedure arguments -> a request plan (pure Python, no GIMP)."""
from __future__ import annotations

import pytest

from plugin_host.serve.httpd import describe_methods


@pytest.fixture(scope="module")
def described(toy_registry):
    return {m["name"]: m for m in describe_methods(toy_registry)}


def by_name(specs):
    return {s["name"]: s for s in specs}


def test_names_menus_and_labels(bridge_modules, described):
    args = bridge_modules.args
    gatys = described["gatys"]
    assert args.procedure_name(gatys) == "plug-in-plugin-host-gatys"
    assert args.procedure_name({"name": "my_method"}) == "plug-in-plugin-host-my-method"
    assert args.menu_path(gatys) == "<Image>/Filters/Artistic/Neural Style"
    assert args.menu_label(gatys) == "Neural Style (Gatys)..."
    assert args.menu_path(described["twice"]) == "<Image>/Filters/Enhance/Neural Style"


@pytest.mark.parametrize("placement, path, output", [
    ({}, "<Image>/Filters/Artistic/Neural Style", "replace"),
    ({"submenu": "Sketch"}, "<Image>/Filters/Artistic/Sketch", "replace"),
    ({"menu": "Light and Shadow", "submenu": ""}, "<Image>/Filters/Light and Shadow", "replace"),
    ({"menu": "Render", "creates_image": True}, "<Image>/Filters/Render/Neural Style", "new-image"),
])
def test_a_method_chooses_its_menu_and_a_generator_makes_a_new_image(bridge_modules, placement, path, output):
    """The host's description carries menu, submenu and creates_image; the bridge places and defaults by them."""
    from plugin_host import ImageInput, Method, Schema

    method = Method(name="m", title="M", description="d", inputs=(ImageInput("content"),), schema=Schema(),
                    run="x:y", **placement)
    assert method.problems() == []
    described = method.to_json()
    assert bridge_modules.args.menu_path(described) == path
    assert by_name(bridge_modules.args.argument_specs(described))["output-mode"]["default"] == output


@pytest.mark.parametrize("placement, problem", [
    ({"menu": "Filters/Artistic"}, "menu 'Filters/Artistic' must be one of Artistic, Blur"),
    ({"menu": "artistic"}, "must be one of"),
    ({"submenu": "Neural/Style"}, "without '/'"),
    ({"submenu": "x" * 41}, "up to 40 characters"),
    ({"creates_image": "yes"}, "creates_image must be True or False"),
])
def test_a_menu_gimp_does_not_have_is_refused_at_registration(placement, problem):
    from plugin_host import ImageInput, Method, Schema

    method = Method(name="m", title="M", description="d", inputs=(ImageInput("content"),), schema=Schema(),
                    run="x:y", **placement)
    assert any(problem in p for p in method.problems()), method.problems()


def test_every_parameter_becomes_one_argument_of_the_right_kind(bridge_modules, described):
    specs = by_name(bridge_modules.args.argument_specs(described["gatys"]))
    params = described["gatys"]["params"]
    assert {p["name"].replace("_", "-") for p in params} <= set(specs)
    weight = specs["style-weight"]
    assert (weight["kind"], weight["min"], weight["max"], weight["default"]) == ("double", 0.0, 1e12, 20.0)
    assert (specs["iterations"]["kind"], specs["iterations"]["min"], specs["iterations"]["max"]) == ("int", 1, 10000)
    assert specs["optimizer"]["kind"] == "choice" and [c[0] for c in specs["optimizer"]["choices"]] == ["lbfgs", "adam"]
    assert specs["encoder"]["kind"] == "choice" and "vgg16-caffe-hed" in [c[0] for c in specs["encoder"]["choices"]]
    assert specs["init-file"]["kind"] == "file"
    assert specs["style-layers"] == dict(specs["style-layers"], kind="string",
                                         default="relu1_1,relu2_1,relu3_1,relu4_1,relu5_1")
    # no default and a positive minimum: 0 stands for "automatic"
    assert (specs["learning-rate"]["min"], specs["learning-rate"]["default"]) == (0, 0)
    assert "0 = automatic" in specs["learning-rate"]["blurb"]


def test_image_inputs_get_file_and_layer_slots_and_masks_a_source(bridge_modules, described):
    specs = by_name(bridge_modules.args.argument_specs(described["adain"]))
    for slot in ("style", "style-2"):
        assert specs[f"{slot}-file"]["kind"] == "file" and specs[f"{slot}-layer"]["kind"] == "drawable"
        assert specs[f"{slot}-blend"]["kind"] == "double"
    assert [c[0] for c in specs["mask-source"]["choices"]] == ["none", "selection", "channels"]
    assert specs["mask-channel"]["kind"] == specs["mask-2-channel"]["kind"] == "channel"
    assert specs["output-mode"]["default"] == "replace"
    assert "content-file" not in specs  # the content is the active drawable


def test_a_parameter_named_like_a_bridge_argument_is_renamed_not_dropped(bridge_modules):
    method = {"name": "m", "inputs": [{"name": "content", "role": "content"}],
              "params": [{"name": "output_mode", "kind": "bool", "default": True}]}
    specs = by_name(bridge_modules.args.argument_specs(method))
    assert specs["param-output-mode"]["source"] == ("param", "output_mode")
    assert bridge_modules.args.collect(method, {"param-output-mode": False})["params"] == {"output_mode": False}


def test_collect_builds_the_request_from_argument_values(bridge_modules, described):
    args = bridge_modules.args
    layer = object()
    plan = args.collect(described["gatys"], {
        "style-file": "/art/a.png", "style-2-layer": layer, "style-2-file": "/ignored.png", "style-2-blend": 3.0,
        "iterations": 5, "learning-rate": 0, "content-layers": "relu3_1", "init-file": None,
        "output-mode": "new-layer"})
    assert plan["images"] == {"style": [("file", "/art/a.png"), ("layer", layer)]}
    assert plan["blend"] == {"style": [1.0, 3.0]}
    assert plan["params"]["iterations"] == 5 and plan["params"]["content_layers"] == "relu3_1"
    assert "learning_rate" not in plan["params"] and "init_file" not in plan["params"]
    assert plan["output"] == "new-layer"


def test_the_plan_validates_against_the_methods_own_schema(bridge_modules, described, toy_registry):
    """Defaults straight from GIMP's dialog are values the host accepts."""
    for name in ("gatys", "adain"):
        plan = bridge_modules.args.collect(described[name], {"style-file": "/x.png"})
        method = toy_registry.method(name)
        method.schema.validate(plan["params"], models=toy_registry.model_names())


def test_a_missing_required_image_is_a_message_for_the_user(bridge_modules, described):
    with pytest.raises(ValueError, match="choose a file or an open layer for 'Style images'"):
        bridge_modules.args.collect(described["gatys"], {})


def test_masks_from_channels_need_a_channel(bridge_modules, described):
    args = bridge_modules.args
    with pytest.raises(ValueError, match="no channel is chosen"):
        args.collect(described["adain"], {"style-file": "/x.png", "mask-source": "channels"})
    channel = object()
    plan = args.collect(described["adain"], {"style-file": "/x.png", "mask-source": "channels",
                                             "mask-channel": channel})
    assert plan["masks"] == {"mask": ("channels", [channel, None])}
    assert args.collect(described["adain"], {"style-file": "/x.png"})["masks"] == {}


def test_a_new_method_appears_with_no_change_to_the_bridge(bridge_modules, described):
    specs = by_name(bridge_modules.args.argument_specs(described["slow"]))
    assert set(specs) == {"output-mode", "steps", "delay"}


def test_dialog_labels_get_mnemonics_that_spare_the_buttons(bridge_modules, described):
    """GIMP warns about clashes among labels and with _OK/_Cancel/_Help/_Reset/_Load/_Save."""
    for name in ("gatys", "adain", "slow", "twice"):
        letters = []
        for spec in bridge_modules.args.argument_specs(described[name]):
            marks = [i for i, c in enumerate(spec["nick"]) if c == "_"]
            assert len(marks) <= 1, spec["nick"]
            letters += [spec["nick"][i + 1].lower() for i in marks]
        assert len(set(letters)) == len(letters) and not set(letters) & set("ochrsl"), (name, letters)
        assert len(letters) >= min(10, len(bridge_modules.args.argument_specs(described[name])))
    odd = {"name": "m", "inputs": [], "params": [{"name": "x", "kind": "bool", "label": "a_b"}]}
    assert bridge_modules.args.argument_specs(odd)[-1]["nick"] == "_a__b"


def test_the_dialog_groups_arguments_by_input_and_parameters(bridge_modules, described):
    groups = bridge_modules.args.dialog_layout(described["adain"])
    assert [(g["id"], g["title"]) for g in groups] == [("output", None), ("style", "Style images"),
                                                      ("mask", "Masks"), ("parameters", "Parameters")]
    every = [name for g in groups for name in g["args"]]
    assert every == [s["name"] for s in bridge_modules.args.argument_specs(described["adain"])]
    assert [g["id"] for g in bridge_modules.args.dialog_layout(described["slow"])] == ["output", "parameters"]


def test_numbers_fit_gimps_argument_types(bridge_modules):
    method = {"name": "m", "inputs": [], "params": [
        {"name": "big", "kind": "int", "default": 5, "min": -10**12, "max": 10**12},
        {"name": "free", "kind": "float", "default": 0.5, "min": None, "max": None}]}
    specs = by_name(bridge_modules.args.argument_specs(method))
    assert (specs["big"]["min"], specs["big"]["max"]) == (-(2**31 - 1), 2**31 - 1)
    assert (specs["free"]["min"], specs["free"]["max"]) == (-1e15, 1e15)


def test_a_blend_of_weights_gets_one_slider_per_name_and_sends_only_weights_above_zero(bridge_modules):
    from plugin_host import ImageInput, Method, Schema
    from plugin_host.sdk import WeightsParam

    method = Method(name="m", title="M", description="d", inputs=(ImageInput("content"),), run="x:y",
                    schema=Schema((WeightsParam("style_blend", "Style blend", choices=("monet", "ukiyoe"), max=2.0),)))
    described = method.to_json()
    args = bridge_modules.args
    sliders = [s for s in args.argument_specs(described) if s["source"][0] == "param"]
    assert [(s["name"], s["kind"], s["min"], s["max"], s["default"]) for s in sliders] == [
        ("style-blend-monet", "double", 0.0, 2.0, 0.0), ("style-blend-ukiyoe", "double", 0.0, 2.0, 0.0)]
    assert [s["nick"].replace("_", "") for s in sliders] == ["Style blend: monet", "Style blend: ukiyoe"]
    assert args.collect(described, {})["params"] == {}  # all at 0: the parameter is not given
    plan = args.collect(described, {"style-blend-monet": 0.0, "style-blend-ukiyoe": 0.5})
    assert plan["params"] == {"style_blend": {"ukiyoe": 0.5}}
    assert method.schema.validate(plan["params"]).style_blend == {"ukiyoe": 0.5}


def test_a_choice_the_method_fills_in_itself_is_automatic_in_the_dialog_and_not_sent(bridge_modules):
    """A choice whose default is None (StyleGAN's collection: the chosen generator's first class) must not be
    sent as the first choice, which a generator without that class would refuse."""
    method = {"name": "m", "inputs": [], "params": [
        {"name": "collection", "kind": "choice", "default": None, "choices": ["photo", "monet"]},
        {"name": "odd", "kind": "choice", "default": None, "choices": ["automatic", "x"]},
        {"name": "mode", "kind": "choice", "default": "b", "choices": ["a", "b"]}]}
    args = bridge_modules.args
    specs = by_name(args.argument_specs(method))
    assert specs["collection"]["choices"][0] == ("automatic", "Automatic")
    assert specs["collection"]["default"] == "automatic" and specs["odd"]["default"] == "-automatic"
    assert specs["mode"]["choices"] == [("a", "a"), ("b", "b")] and specs["mode"]["default"] == "b"
    assert args.collect(method, {})["params"] == {"mode": "b"}
    assert args.collect(method, {"collection": "monet", "odd": "automatic"})["params"] == \
        {"collection": "monet", "odd": "automatic", "mode": "b"}
