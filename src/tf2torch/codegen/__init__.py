"""Code generation: IR -> a Python module model -> model.py text and a state dict."""
