"""The fp32 arithmetic of CUDA kernels, in one place (training, evaluation, ranking).

The published numbers come from pre-Ampere GPUs, where fp32 convolutions and matrix
products are plain IEEE fp32. On Ampere and later GPUs PyTorch lets cuDNN run fp32
convolutions in TF32 (10-bit mantissa) unless told otherwise, so the faithful default
switches TF32 off; the config key ALLOW_TF32 opts into it.

Only PyTorch's `fp32_precision` settings are used ('ieee' or 'tf32' for cuDNN
convolutions and for cuBLAS matrix products): recent PyTorch raises when a program mixes
them with the older `allow_tf32` flags, so this project never reads or writes the latter.
The settings are process-wide and hold only while a stage runs: `numeric_settings`
restores what it found, so that one stage's choices (TF32, cuDNN autotuning) do not leak
into the next one run in the same process. On a machine without CUDA they change nothing.
"""
import contextlib

import torch


def fp32_precision(allow_tf32):
    """The fp32_precision value for ALLOW_TF32."""
    return 'tf32' if allow_tf32 else 'ieee'


def current_settings():
    """The settings in force, as this module names them (for reports and tests)."""
    return {'conv_fp32_precision': torch.backends.cudnn.conv.fp32_precision,
            'matmul_fp32_precision': torch.backends.cuda.matmul.fp32_precision,
            'cudnn_benchmark': torch.backends.cudnn.benchmark}


def _apply(conv, matmul, benchmark):
    torch.backends.cudnn.conv.fp32_precision = conv
    torch.backends.cuda.matmul.fp32_precision = matmul
    torch.backends.cudnn.benchmark = benchmark


@contextlib.contextmanager
def numeric_settings(allow_tf32, cudnn_benchmark=False):
    """Run the block with TF32 on or off for cuDNN convolutions and cuBLAS matrix products,
    and cuDNN autotuning on or off; the previous settings come back afterwards."""
    saved = current_settings()
    precision = fp32_precision(allow_tf32)
    _apply(precision, precision, bool(cudnn_benchmark))
    try:
        yield
    finally:
        _apply(saved['conv_fp32_precision'], saved['matmul_fp32_precision'], saved['cudnn_benchmark'])
