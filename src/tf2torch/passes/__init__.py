"""Graph passes, run in the order given by `pipeline.run_passes`."""
