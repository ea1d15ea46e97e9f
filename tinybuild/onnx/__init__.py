"""The ONNX importer: a float or quantized ONNX graph -> the int8 (16x8, float32)
``.tflite`` tinybuild compiles.

``convert_onnx(src, dst, calibration, report_path, quant="int8")`` is the
``.onnx`` model importer (registered through ``tinybuild_model_importers`` as
a built-in plugin, see tinybuild/plugins.py). The route (docs/onnx.md): the
ONNX graph is translated by tinybuild itself into TFLite operators in NHWC
and written with tinybuild.tflite_writer, so everything after conversion
(lowering, kernels, validation against TFLite's BUILTIN_REF kernels) is the
same as for a Keras model. No onnx-tf / onnx2tf.

Steps:
1. load (external data too), ``onnx.checker``, opset 9..21, one input and
   one output, a dynamic batch dimension fixed to 1 (other dynamic dims stop);
2. onnxruntime runs the float model with every tensor as an output, once per
   calibration sample: min/max per tensor, and each tensor's shape and (for
   tensors computed from constants only) its value: Shape/Gather/Cast/...
   chains on constants are folded that way;
3. BatchNormalization, bias Add/Sub and constant Mul/Div after a Conv, Gemm
   or MatMul are folded into its weights; Relu/Clip after it are fused;
   Identity and Dropout are removed;
4. layouts: each ONNX tensor maps to a TFLite tensor through a permutation
   (``perm``: TFLite axis i holds ONNX axis perm[i]). NCHW tensors feeding a
   Conv or pool are NHWC on the device, weights permuted at build time (OIHW ->
   OHWI, depthwise -> 1HWC); a Transpose only relabels; a Flatten of an NHWC
   tensor read only by Gemm/MatMul becomes a RESHAPE, with the Gemm's weight
   columns permuted instead (no TRANSPOSE on the device for a plain CNN);
5. quantization as TFLite's converter does it: int8 activations asymmetric
   from the calibration min/max (0 inside the range), per-channel symmetric int8
   weights, int32 bias = round(b / (s_in * s_w)); pooling, reshapes and
   concatenation keep their input's scale, LOGISTIC/SOFTMAX 1/256, TANH 1/128;
6. the float model (onnxruntime) and the written model (TFLite BUILTIN_REF)
   run on the calibration samples: top-1 agreement, max/mean abs difference.

Modules: loader (checks), graph (onnxruntime's observations, the rewrites),
fold (BatchNormalization, bias, activations into linear ops), quantize,
writer (layouts, tensors), ops (one function per ONNX operator: ``OPS``),
convert (the entry point and the float-vs-quantized comparison).

onnx and onnxruntime are imported only inside the functions that use them:
importing this package costs nothing (the plugin manager imports it on every run).
"""
