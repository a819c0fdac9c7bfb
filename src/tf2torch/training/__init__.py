"""Training a converted model as Keras compiled it: optimizers, schedules, losses, metrics,
regularizers, constraints (runtime files that train.py copies), compile-config parsing,
the Keras-variable -> torch-tensor map, optimizer state transfer and train.py rendering."""
