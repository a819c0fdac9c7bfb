"""Run source and converted models on the same inputs and compare."""
