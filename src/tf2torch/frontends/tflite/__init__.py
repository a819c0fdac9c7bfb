"""TFLite frontend: a .tflite flatbuffer (float32, float16 or integer-quantized) read without
TensorFlow, dequantized (quantization.py), lowered to the TF ops it was converted from and
imported by the TF frontend's op importers into the IR."""
