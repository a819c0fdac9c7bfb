"""Keras frontend: .keras archives, legacy .h5 files and live keras.Model objects."""
