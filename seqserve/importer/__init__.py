"""`seqserve import`: any streamable recurrent ONNX file -> a model repository version."""
