"""Op-level TensorFlow frontend: SavedModels, frozen GraphDefs and tf.functions -> IR.

TensorFlow is imported lazily, inside functions only.
"""
