#!/usr/bin/env python3
"""Small ONNX models as starting inputs of the `onnx` fuzz target: one per
importer path (NCHW and NHWC inputs, Conv with pads and auto_pad, a Pad
folded or not, MatMul + Add, Gemm with alpha/beta/transB, Reshape,
Transpose, Squeeze, ReduceMean, Sub/Div normalization, Concat, Sum,
BatchNormalization, every activation, Dropout with a ratio input, Constant,
Identity, tf2onnx's computed shapes) and a few that must be refused.

    python3 tools/onnx/gen_fuzz_seeds.py fuzz/corpus/onnx
"""
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)


def w(name, *shape):
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def i64(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def model(nodes, inits, inp, out_shape, opset=13):
    g = helper.make_graph(
        nodes, "seed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, inp)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


N = helper.make_node
seeds = {
    "conv_pads_relu_gap": model(
        [N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]), N("Relu", ["c"], ["r"]),
         N("GlobalAveragePool", ["r"], ["g"]), N("Flatten", ["g"], ["f"]), N("Gemm", ["f", "d"], ["y"], transB=1, alpha=0.5)],
        [w("w", 4, 2, 3, 3), w("b", 4), w("d", 3, 4)], ["N", 2, 6, 5], ["N", 3]),
    "nhwc_input_transpose_matmul_add": model(
        [N("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]), N("Conv", ["t", "w"], ["c"], auto_pad="SAME_UPPER"),
         N("Transpose", ["c"], ["u"], perm=[0, 2, 3, 1]), N("Reshape", ["u", "s"], ["f"]),
         N("MatMul", ["f", "m"], ["mm"]), N("Add", ["mm", "bias"], ["a"]), N("Softmax", ["a"], ["y"], axis=-1)],
        [w("w", 3, 1, 3, 3), i64("s", [-1, 48]), w("m", 48, 5), w("bias", 5)], [1, 4, 4, 1], [1, 5]),
    "pad_bn_pools_concat": model(
        [N("Pad", ["x", "p"], ["pd"], mode="constant"), N("MaxPool", ["pd"], ["m"], kernel_shape=[3, 3], strides=[1, 1]),
         N("AveragePool", ["x"], ["a"], kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1]),
         N("BatchNormalization", ["a", "g", "b", "mu", "v"], ["bn"], epsilon=1e-3),
         N("Concat", ["m", "bn"], ["cat"], axis=1), N("LeakyRelu", ["cat"], ["l"], alpha=0.1),
         N("ReduceMean", ["l"], ["r"], axes=[2, 3], keepdims=1), N("Squeeze", ["r", "ax"], ["sq"]),
         N("Elu", ["sq"], ["y"])],
        [i64("p", [0, 0, 1, 1, 0, 0, 1, 1]), w("g", 2), w("b", 2), w("mu", 2),
         numpy_helper.from_array(np.ones(2, np.float32), "v"), i64("ax", [2, 3])], ["N", 2, 5, 5], ["N", 4]),
    "normalize_sum_dropout": model(
        [N("Sub", ["x", "mean"], ["s"]), N("Div", ["s", "std"], ["d"]), N("Conv", ["d", "w"], ["c1"], pads=[0, 0, 0, 0]),
         N("Conv", ["d", "w"], ["c2"]), N("Sum", ["c1", "c2", "c1"], ["sm"]), N("Sigmoid", ["sm"], ["sg"]),
         N("Dropout", ["sg", "ratio"], ["dr"]), N("Tanh", ["dr"], ["th"]), N("Flatten", ["th"], ["f"]),
         N("Identity", ["f"], ["i"]), N("Gemm", ["i", "dd"], ["y"], transB=1)],
        [numpy_helper.from_array(np.array([0.5, 0.4], np.float32).reshape(1, 2, 1, 1), "mean"),
         numpy_helper.from_array(np.array([0.2, 0.3], np.float32).reshape(1, 2, 1, 1), "std"),
         w("w", 2, 2, 1, 1), numpy_helper.from_array(np.array(0.3, np.float32), "ratio"), w("dd", 4, 18)], ["N", 2, 3, 3], ["N", 4]),
    "constant_node_flat_input": model(
        [N("Constant", [], ["k"], value=w("kv", 6, 3)), N("Gemm", ["x", "k", "c"], ["g"], beta=2.0),
         N("BatchNormalization", ["g", "s", "b", "m", "v"], ["y"])],
        [w("c", 3), w("s", 3), w("b", 3), w("m", 3), numpy_helper.from_array(np.ones(3, np.float32), "v")], ["N", 6], ["N", 3]),
    "tf2onnx_style_shape_reshape": model(
        [N("Reshape", ["x", "to_nchw"], ["r"]), N("Conv", ["r", "w"], ["c"]), N("Mul", ["c", "g"], ["m"]),
         N("Add", ["m", "b"], ["a"]), N("Transpose", ["a"], ["t"], perm=[0, 2, 3, 1]), N("Shape", ["a"], ["s"]),
         N("Gather", ["s", "perm"], ["sp"]), N("Cast", ["sp"], ["sc"], to=6),
         N("Slice", ["sc", "zero", "one", "zero"], ["bs"]), N("Concat", ["bs", "flat"], ["shape"], axis=0),
         N("Cast", ["shape"], ["shape64"], to=7), N("Reshape", ["t", "shape64"], ["f"]),
         N("MatMul", ["f", "d"], ["y"])],
        [i64("to_nchw", [-1, 1, 5, 5]), w("w", 2, 1, 3, 3), w("g", 2, 1, 1), w("b", 2, 1, 1),
         i64("perm", [0, 2, 3, 1]), i64("zero", [0]), i64("one", [1]), i64("flat", [18]), w("d", 18, 3)],
        ["N", 5, 5, 1], ["N", 3]),
    "refused_grouped_conv": model(
        [N("Conv", ["x", "w"], ["y"], group=2)], [w("w", 4, 1, 3, 3)], ["N", 2, 5, 5], ["N", 4, 3, 3]),
    "refused_unknown_op": model([N("Resize", ["x"], ["y"])], [], ["N", 1, 4, 4], ["N", 1, 8, 8]),
}

out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/onnx")
out.mkdir(parents=True, exist_ok=True)
for name, m in seeds.items():
    (out / f"{name}.onnx").write_bytes(m.SerializeToString())
    print(name, len(m.SerializeToString()), "bytes")
