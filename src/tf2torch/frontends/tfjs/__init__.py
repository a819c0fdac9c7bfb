"""TF.js models (model.json + weight shards): layers-models through the Keras frontend, graph-models through the TF frontend."""
