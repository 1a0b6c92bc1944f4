"""seqserve: stateful streaming inference for recurrent sequence models on ONNX Runtime.

`seqserve.service` is the server (torch-free), `seqserve.model` the training side (torch),
`seqserve.cli` the `seqserve` command.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seqserve")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
