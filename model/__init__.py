"""The training side of seqserve: data, PyTorch models, training, ONNX export and verification.

Only `model.reference` and `model.verify` work without torch; everything else needs the `train`
extra (`pip install "seqserve[train]"`). Nothing here is imported by `service/`: the ONNX file
and its manifest are the contract between the two.
"""
