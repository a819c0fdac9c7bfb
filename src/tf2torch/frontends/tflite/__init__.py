"""TFLite frontend: a .tflite flatbuffer (float32) read without TensorFlow, lowered to the TF
ops it was converted from and imported by the TF frontend's op importers into the IR."""
