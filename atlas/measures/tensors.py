"""Where the analyses compute: torch tensors on the device the features are on.

Every heavy measure takes ``device`` (a :class:`torch.device`, a string such as ``"cuda"``, or
None) and arrays that are numpy arrays or torch tensors. ``device=None`` means the device of the
first tensor argument, else the CPU (today's behaviour: numpy input is wrapped without a copy).
Results come back as numpy arrays and Python floats whatever the device.

Example
-------
>>> import numpy as np
>>> x = as_tensor(np.ones((2, 3), np.float32))
>>> x.device.type, x.dtype
('cpu', torch.float32)
>>> resolve_device(None, x).type
'cpu'
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["as_tensor", "column_sums", "gram", "is_tensor", "load_linalg", "mps_available", "resolve_device", "to_numpy",
           "upload_features"]


def is_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def resolve_device(device: Any = None, *arrays: Any, default: Any = "cpu", mps: bool = False) -> torch.device:
    """The one device resolver: ``device`` as a :class:`torch.device`; None: the device of the first
    tensor in ``arrays``, else ``default``. ``"auto"``: CUDA if available, else MPS when ``mps`` and
    available, else the CPU."""
    if device is None:
        device = next((a.device for a in arrays if is_tensor(a)), default)
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps and mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def as_tensor(x: Any, device: Any = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``x`` (numpy array or tensor) as a tensor on ``device`` (None: where it is; numpy: the CPU)
    in ``dtype`` (None: unchanged). A CPU numpy array is wrapped without a copy where possible."""
    if not is_tensor(x):
        arr = np.asarray(x)
        if not arr.flags.writeable or not arr.dtype.isnative or any(s < 0 for s in arr.strides):
            arr = np.array(arr)  # torch wraps only writeable, native-order, positively strided arrays
        x = torch.from_numpy(arr)
    dev = resolve_device(device, x)
    return x.to(device=dev, dtype=dtype) if (x.device != dev or (dtype is not None and x.dtype != dtype)) else x


def to_numpy(x: Any) -> np.ndarray:
    """A tensor (any device) or array as a numpy array (a view for CPU tensors)."""
    return x.detach().cpu().numpy() if is_tensor(x) else np.asarray(x)


def upload_features(features: Any, device: Any, chunk: int = 16) -> torch.Tensor:
    """Float32 copy of ``features`` (N, ...) on ``device``, converted ``chunk`` images at a time, so
    the device never holds a second (e.g. float16) copy of the whole set; its finiteness is checked
    by the measures (:func:`atlas.measures.positional._as_features`)."""
    dev = resolve_device(device, features)
    if is_tensor(features) and features.device == dev and features.dtype == torch.float32:
        return features
    out = torch.empty(tuple(features.shape), dtype=torch.float32, device=dev)
    for s in range(0, len(features), chunk):
        out[s:s + chunk].copy_(as_tensor(features[s:s + chunk]))
    return out


def gram(a: torch.Tensor, transpose: bool = False) -> torch.Tensor:
    """``a @ a.T`` (with ``transpose``: ``a.T @ a``) of a float32 matrix, in float32 products, returned
    as float64 on ``a``'s device. On the CPU through numpy's BLAS, which runs this product as a
    symmetric rank-k update (syrk): half the work of torch's general matmul (measured 31 vs 42 ms
    for 196 x 38400, 1.2 vs 3 ms for 3900 x 384, one core). Elsewhere torch's matmul, there."""
    if a.device.type == "cpu":
        an = a.numpy()
        return torch.from_numpy((an.T @ an) if transpose else (an @ an.T)).double()
    return ((a.T @ a) if transpose else (a @ a.T)).double()


def column_sums(a: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Float64 sums over the rows of a float32 matrix (of its squares with ``squared``), on ``a``'s
    device. On the CPU through numpy, which accumulates float32 data in float64 without a float64
    copy of it (torch's CPU column reductions in float64 are 3-4x slower at 4000 x 384)."""
    if a.device.type == "cpu":
        an = a.numpy()
        return torch.from_numpy(np.einsum("ij,ij->j", an, an, dtype=np.float64) if squared
                                else an.sum(axis=0, dtype=np.float64))
    return (a.double() ** 2).sum(dim=0) if squared else a.sum(dim=0, dtype=torch.float64)


def load_linalg(device: Any) -> None:
    """Load torch's CUDA linear-algebra kernels (cuSOLVER; loaded at their first use) in this thread.

    Call before the analyses run in several threads: two threads whose first ``torch.linalg`` call
    on a GPU coincide can fail with "lazy wrapper should be called at most once"
    (https://github.com/pytorch/pytorch/issues/90613; seen here with ``eigh`` on an H200, torch
    2.11). Nothing happens on other devices.
    """
    dev = resolve_device(device)
    if dev.type != "cuda":
        return
    a = torch.eye(2, device=dev)
    torch.linalg.eigh(a)
    torch.linalg.svdvals(a)
