"""A bad parameter reaches the GIMP user named by its dialog label, not by the host's Python name."""
from __future__ import annotations

import json

import pytest

from plugin_host.errors import ParameterError
from plugin_host.serve.httpd import describe_methods


def test_a_parameter_error_carries_its_name_and_detail_on_the_wire():
    err = ParameterError("blur_sigma", "out of range: 99.0; allowed: a number from 0.0 to 10.0", hint="lower it")
    assert err.to_json() == {"error": "parameter 'blur_sigma': out of range: 99.0; allowed: a number from 0.0 to 10.0",
                             "kind": "parameter", "hint": "lower it", "param": "blur_sigma",
                             "detail": "out of range: 99.0; allowed: a number from 0.0 to 10.0"}


def test_the_dialog_names_a_bad_parameter_by_its_label(bridge_modules, toy_registry):
    args, client = bridge_modules.args, bridge_modules.client
    styled = next(m for m in describe_methods(toy_registry) if m["name"] == "perceptual")
    label = next(p["label"] for p in styled["params"] if p["name"] == "content_scale")
    with pytest.raises(ParameterError) as raised:
        toy_registry.method("perceptual").schema.validate({"content_scale": 99})
    error = client.HostError.from_json(json.loads(json.dumps(raised.value.to_json())))
    shown = args.error_message(styled, error)
    assert shown.startswith(f"{label}: out of range: 99") and "content_scale" not in shown


def test_other_errors_are_shown_as_the_host_wrote_them(bridge_modules, toy_registry):
    args, client = bridge_modules.args, bridge_modules.client
    gatys = next(m for m in describe_methods(toy_registry) if m["name"] == "gatys")
    weights = client.HostError.from_json({"error": "weights file missing", "kind": "weights", "hint": "fetch it"})
    assert args.error_message(gatys, weights) == "weights file missing\nHint: fetch it"
    unknown = client.HostError.from_json({"error": "parameter 'nope': unknown parameter 'nope'", "kind": "parameter",
                                          "param": "nope", "detail": "unknown parameter 'nope'"})
    assert args.error_message(gatys, unknown) == "parameter 'nope': unknown parameter 'nope'"


def test_a_server_answer_names_the_parameter_by_its_label(make_server, bridge_modules):
    """Through a real server: validation fails before the job starts (HTTP 400) and keeps param and detail."""
    wire, client, args = bridge_modules.wire, bridge_modules.client, bridge_modules.args
    _, path = make_server()
    info = json.loads(path.read_text())
    body = wire.encode_job("slow", {"steps": 0}, {"content": wire.raw_image(bytes(4 * 4 * 3), 4, 3, 4)})
    with pytest.raises(client.HostError) as raised:
        client.run_job(info, body)
    assert raised.value.param == "steps"
    status, described = client.request(info, "GET", "/v1/methods")
    slow = next(m for m in (described["methods"] if isinstance(described, dict) else described)
                if m["name"] == "slow")
    assert args.error_message(slow, raised.value).startswith("Steps: out of range: 0")
