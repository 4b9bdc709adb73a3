import json
from pathlib import Path

import pytest

from plugin_host.errors import ParameterError
from plugin_host.schema import (BoolParam, ChoiceParam, FloatParam, IntParam, ListParam, ModelParam, PathParam,
                                WeightsParam,
                                Schema, StringParam)

SCHEMA = Schema(params=(
    FloatParam("style_weight", default=1.0, min=0.0, max=10.0),
    IntParam("iterations", default=5, min=1, max=100),
    BoolParam("keep", default=False),
    ChoiceParam("optimizer", default="lbfgs", choices=("lbfgs", "adam")),
    StringParam("note", default=""),
    PathParam("init_file", default=None),
    ModelParam("encoder", default="vgg16", model_kind="encoder"),
    ListParam("layers", default=("a", "b"), item=ChoiceParam("layer", choices=("a", "b", "c"))),
))
MODELS = {"encoder": ["vgg16", "vgg19"]}


class TestValidate:
    def test_defaults_validate(self):
        params = SCHEMA.validate({}, models=MODELS)
        assert params.style_weight == 1.0 and params.iterations == 5 and params.layers == ("a", "b")
        assert params.init_file is None

    def test_text_values_are_coerced(self, tmp_path):
        file = tmp_path / "x.png"
        file.write_bytes(b"x")
        params = SCHEMA.validate({"style_weight": "2.5", "iterations": "7", "keep": "yes", "optimizer": "adam",
                                  "init_file": str(file), "encoder": "vgg19", "layers": "c, a"}, models=MODELS)
        assert (params.style_weight, params.iterations, params.keep) == (2.5, 7, True)
        assert params.init_file == Path(file) and params.layers == ("c", "a")

    @pytest.mark.parametrize("name, value, words", [
        ("style_weight", "11", ["style_weight", "out of range", "0.0 to 10.0"]),
        ("style_weight", "abc", ["style_weight", "expected a number"]),
        ("style_weight", "nan", ["finite"]),
        ("iterations", "2.5", ["iterations", "whole number"]),
        ("iterations", True, ["whole number"]),
        ("keep", "maybe", ["keep", "true or false"]),
        ("optimizer", "adma", ["did you mean 'adam'"]),
        ("encoder", "vgg_16", ["did you mean 'vgg16'", "weights list"]),
        ("layers", "a,d", ["layers", "'d'"]),
        ("init_file", "/no/such/file.png", ["no such file"]),
    ])
    def test_bad_values_name_the_parameter_and_what_is_allowed(self, name, value, words):
        with pytest.raises(ParameterError) as info:
            SCHEMA.validate({name: value}, models=MODELS)
        for word in words:
            assert word in str(info.value)

    def test_unknown_name_suggests_the_closest(self):
        with pytest.raises(ParameterError, match="did you mean 'iterations'"):
            SCHEMA.validate({"iteration": 3})

    def test_cross_parameter_checks_run(self):
        def same_length(params):
            if len(params.layers) != 2:
                raise ParameterError("layers", "need two")

        schema = Schema(SCHEMA.params, checks=(same_length,))
        with pytest.raises(ParameterError, match="need two"):
            schema.validate({"layers": "a"}, models=MODELS)


class TestDeclaration:
    def test_duplicate_names_rejected(self):
        with pytest.raises(ValueError, match="declared twice"):
            Schema((IntParam("a", default=1), FloatParam("a", default=1.0)))

    def test_default_outside_range_is_a_plugin_bug(self):
        with pytest.raises(ParameterError):
            Schema((IntParam("a", default=0, min=1),))

    def test_json_round_trip(self):
        described = json.loads(json.dumps(SCHEMA.to_json()))
        by_name = {p["name"]: p for p in described}
        assert by_name["style_weight"]["min"] == 0.0 and by_name["style_weight"]["max"] == 10.0
        assert by_name["optimizer"]["choices"] == ["lbfgs", "adam"]
        assert by_name["layers"]["default"] == ["a", "b"] and by_name["layers"]["item"]["kind"] == "choice"
        assert by_name["encoder"]["model_kind"] == "encoder"
        # values from the JSON description validate back to the same Params
        again = SCHEMA.validate({p["name"]: p["default"] for p in described}, models=MODELS)
        assert again == SCHEMA.validate({}, models=MODELS)


class TestRenamedParameters:
    schema = Schema((FloatParam("strength", default=1.0, min=0, max=1, renamed_from=("alpha",)),
                     IntParam("max_size", default=512, min=0, renamed_from=("content_size", "size"))))

    def test_current_names_validate_without_a_warning(self, recwarn):
        params = self.schema.validate({"strength": "0.5", "max_size": 64})
        assert (params.strength, params.max_size) == (0.5, 64)
        assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]

    def test_former_names_validate_with_one_warning_each_naming_the_new_name(self):
        with pytest.warns(DeprecationWarning) as caught:
            params = self.schema.validate({"alpha": "0.25", "size": 32})
        assert (params.strength, params.max_size) == (0.25, 32)
        assert sorted(str(w.message) for w in caught) == [
            "'alpha' is deprecated and will be removed in the next release: use 'strength'",
            "'size' is deprecated and will be removed in the next release: use 'max_size'"]

    def test_a_former_name_is_checked_like_the_new_one(self):
        with pytest.warns(DeprecationWarning), pytest.raises(ParameterError, match="strength.*out of range"):
            self.schema.validate({"alpha": 2})

    def test_both_names_at_once_is_refused(self):
        with pytest.raises(ParameterError, match="max_size.*given twice.*'content_size'"):
            self.schema.validate({"content_size": 1, "max_size": 2})


def test_weights_param_reads_text_and_mappings_and_names_what_is_wrong():
    blend = WeightsParam("style_blend", choices=("monet", "ukiyoe", "vangogh"))
    assert blend.coerce("monet=0.6, ukiyoe=0.4") == {"monet": 0.6, "ukiyoe": 0.4}
    assert blend.coerce({"vangogh": 2}) == {"vangogh": 2.0}
    assert blend.coerce("") == {}  # not given
    for bad, problem in [("monet:1", "expected NAME=WEIGHT"), ("monet=-1", "weight ≥ 0"), ("monet=nan", "finite"),
                         ("monet=1,monet=2", "named twice"), ("monet=0,ukiyoe=0", "all weights are 0"),
                         ("monte=1", "did you mean 'monet'"), ({"monet": True}, "finite"), (3, "or a mapping")]:
        with pytest.raises(ParameterError, match=problem) as caught:
            blend.coerce(bad)
        assert caught.value.name == "style_blend"
    assert WeightsParam("b").coerce("anything=1") == {"anything": 1.0}  # no choices yet: the method checks names
    described = json.loads(json.dumps(blend.to_json()))
    assert described["kind"] == "weights" and described["choices"] == ["monet", "ukiyoe", "vangogh"]
