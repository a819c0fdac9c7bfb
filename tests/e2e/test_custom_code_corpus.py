"""Models with custom Keras code, as public Keras examples write them, converted through the
CLI with `--custom-code` pointing at the module that defines them (issue 10's corpus).

Each user module defines its classes and `build_model()`; the test builds the model from that
module, saves it with perturbed weights, converts the file with `tf2torch convert
--custom-code <module.py>` and runs the written model.py against Keras' own output.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import perturb_weights
from tf2torch import cli

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def _write_module(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def _inputs(model, batch: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    if not hasattr(model, "inputs"):  # a subclassed model: its build shape, integer ids for a tagger
        shape = [batch, *next(iter(model._build_shapes_dict.values()))[1:]]
        ids = getattr(model, "takes_token_ids", False)
        return [rng.integers(0, 10, size=shape).astype("int32") if ids else rng.standard_normal(shape).astype("float32")]
    for tensor in model.inputs:
        shape = [batch] + [int(d) if d is not None else 11 for d in tensor.shape[1:]]  # 11 steps if unknown
        if "int" in str(tensor.dtype):
            arrays.append(rng.integers(0, 10, size=shape).astype("int32"))
        else:
            arrays.append(rng.standard_normal(shape).astype(np.float32))
    return arrays


def _run_generated(out: Path, arrays: list[np.ndarray]) -> list[np.ndarray]:
    spec = importlib.util.spec_from_file_location(f"generated_{out.parent.name}_{out.name}", out / "model.py")
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    module = generated.load_model(str(out / "model.safetensors"))
    module.eval()
    # Image inputs are NCHW in the generated module (its docstring says so).
    tensors = [torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2) if a.ndim == 4 else a)) for a in arrays]
    with torch.no_grad():
        result = module(*tensors)
    results = list(result.values()) if isinstance(result, dict) else list(result) if isinstance(result, (list, tuple)) else [result]
    return [r.numpy().transpose(0, 2, 3, 1) if r.ndim == 4 else r.numpy() for r in results]


def convert_with_custom_code(tmp_path: Path, name: str, source: str, suffix: str = ".keras", tolerance: float = 1e-5):
    """Build, save, convert through the CLI with --custom-code, compare: returns model.py's text."""
    module_path = _write_module(tmp_path, name, source)
    model = _import(module_path).build_model()
    perturb_weights(model)
    model_path = tmp_path / f"{name}{suffix}"
    out = tmp_path / f"out_{suffix.strip('._')}"
    if suffix == "_savedmodel":  # the graph holds the ops: no code needed to convert it
        model.export(str(model_path), verbose=False)
        assert cli.main(["convert", str(model_path), "-o", str(out)]) == 0
    else:
        model.save(str(model_path))
        assert cli.main(["convert", str(model_path), "-o", str(out), "--custom-code", str(module_path)]) == 0
    arrays = _inputs(model)
    expected = model(arrays if len(arrays) > 1 else arrays[0], training=False)
    expected = list(expected.values()) if isinstance(expected, dict) else expected if isinstance(expected, (list, tuple)) else [expected]
    actual = _run_generated(out, arrays)
    assert len(actual) == len(expected)
    for want, got in zip(expected, actual):
        want = np.asarray(want)
        scale = max(float(np.abs(want).max()), 1.0)
        np.testing.assert_allclose(got, want, rtol=0, atol=tolerance * scale)
    return (out / "model.py").read_text()


SIN_LAYER = """
    import keras
    import tensorflow as tf


    @keras.saving.register_keras_serializable(package="corpus_sin")
    class SinLayer(keras.layers.Layer):
        def call(self, inputs):
            return tf.sin(inputs)


    def build_model():
        inputs = keras.Input((7,))
        x = keras.layers.Dense(5, name="proj")(inputs)
        x = SinLayer(name="sine")(x)
        return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
"""


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_sin_layer_becomes_torch_sin(tmp_path, suffix):
    code = convert_with_custom_code(tmp_path, "corpus_sin", SIN_LAYER, suffix)
    assert "torch.sin(" in code


DENSE_SUB_LAYER = """
    import keras
    import tensorflow as tf


    class ResidualProjection(keras.layers.Layer):
        '''Not registered with Keras: found in the module by --custom-code.'''

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.dense = keras.layers.Dense(units, activation="tanh")

        def call(self, x):
            return x + self.dense(x)

        def get_config(self):
            return {**super().get_config(), "units": self.units}


    def build_model():
        inputs = keras.Input((6,))  # rank 3 lowers Dense to Tensordot: the TF frontend's run-time shapes (deliverable 1)
        x = ResidualProjection(6, name="residual")(inputs)
        return keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
"""


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_custom_layer_with_dense_sub_layer(tmp_path, suffix):
    convert_with_custom_code(tmp_path, "corpus_residual", DENSE_SUB_LAYER, suffix)


VAE_ENCODER = """
    import keras
    from keras import layers, ops


    @keras.saving.register_keras_serializable(package="corpus_vae")
    class Sampling(layers.Layer):
        '''Uses (z_mean, z_log_var) to sample z, the vector encoding a digit.'''

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(1337)

        def call(self, inputs):
            z_mean, z_log_var = inputs
            batch = ops.shape(z_mean)[0]
            dim = ops.shape(z_mean)[1]
            epsilon = keras.random.normal(shape=(batch, dim), seed=self.seed_generator)
            return z_mean + ops.exp(0.5 * z_log_var) * epsilon


    def build_model():
        latent_dim = 2
        encoder_inputs = keras.Input(shape=(12, 11, 1))
        x = layers.Conv2D(4, 3, activation="relu", strides=2, padding="same")(encoder_inputs)
        x = layers.Flatten()(x)
        x = layers.Dense(8, activation="relu")(x)
        z_mean = layers.Dense(latent_dim, name="z_mean")(x)
        z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
        z = Sampling()([z_mean, z_log_var])
        return keras.Model(encoder_inputs, [z_mean, z_log_var, z], name="encoder")
"""


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_vae_encoder_with_sampling(tmp_path, suffix):
    """keras.random.normal in a traced layer: the module draws with torch's generator. The
    deterministic outputs match Keras exactly; the sample matches in distribution."""
    module_path = _write_module(tmp_path, "corpus_vae", VAE_ENCODER)
    model = _import(module_path).build_model()
    perturb_weights(model)
    path = tmp_path / f"vae{suffix}"
    model.save(str(path))
    out = tmp_path / "out"
    assert cli.main(["convert", str(path), "-o", str(out), "--custom-code", str(module_path)]) == 0
    assert "torch.randn(" in (out / "model.py").read_text()
    rows = 4000  # one image repeated: z's rows are independent draws around one (mean, variance)
    image = np.random.default_rng(0).standard_normal((1, 12, 11, 1)).astype("float32")
    arrays = [np.repeat(image, rows, axis=0)]
    z_mean, z_log_var, _ = (np.asarray(t) for t in model(arrays[0], training=False))
    got_mean, got_log_var, z = _run_generated(out, arrays)
    scale = max(1.0, float(np.abs(z_mean).max()), float(np.abs(z_log_var).max()))
    np.testing.assert_allclose(got_mean, z_mean, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(got_log_var, z_log_var, rtol=0, atol=1e-5 * scale)
    std = np.exp(0.5 * z_log_var[0])
    assert z.shape == (rows, 2)
    # Sample mean within 5 standard errors, sample standard deviation within 10%.
    np.testing.assert_array_less(np.abs(z.mean(axis=0) - z_mean[0]), 5 * std / np.sqrt(rows))
    np.testing.assert_allclose(z.std(axis=0), std, rtol=0.1)
    # Training mode draws as well (Sampling ignores `training`), afresh on every call.
    generated = importlib.util.spec_from_file_location("generated_vae_train", out / "model.py")
    module = importlib.util.module_from_spec(generated)
    generated.loader.exec_module(module)
    torch_model = module.load_model(str(out / "model.safetensors")).train()
    x = torch.from_numpy(arrays[0][:5].transpose(0, 3, 1, 2).copy())
    first, second = torch_model(x)[2], torch_model(x)[2]
    assert first.shape == (5, 2) and not torch.equal(first, second)


NOISY_BLOCK = """
    import keras
    from keras import layers


    @keras.saving.register_keras_serializable(package="corpus_noise")
    class NoisyProjection(layers.Layer):
        '''Gaussian noise in training only (keras.random), then a Dense sub-layer.'''

        def __init__(self, units, stddev=0.3, **kwargs):
            super().__init__(**kwargs)
            self.units, self.stddev = units, stddev
            self.dense = layers.Dense(units, activation="tanh")
            self.seed_generator = keras.random.SeedGenerator(7)

        def call(self, x, training=False):
            if training:
                x = x + keras.random.normal(keras.ops.shape(x), stddev=self.stddev, seed=self.seed_generator)
            return self.dense(x)

        def get_config(self):
            return {**super().get_config(), "units": self.units, "stddev": self.stddev}


    def build_model():
        inputs = keras.Input((7,))
        x = NoisyProjection(5, name="noisy")(inputs)
        return keras.Model(inputs, layers.Dense(3, name="head")(x))
"""


def test_random_only_in_training_is_exact_in_eval(tmp_path):
    """keras.random in a training-only branch: the inference path is deterministic (exact, as
    the conversion's self-check requires); the training path draws with torch's generator."""
    code = convert_with_custom_code(tmp_path, "corpus_noise", NOISY_BLOCK)
    eval_path = code[code.index("def forward_eval("):code.index("def forward_train(")]
    train_path = code[code.index("def forward_train("):code.index("def forward(")]
    assert "torch.randn(" not in eval_path and "torch.randn(" in train_path
    assert "traced in inference mode" not in code


NAME_CLASH = """
    import keras
    import tensorflow as tf


    @keras.saving.register_keras_serializable(package="corpus_clash")
    class TransformerEncoder(keras.layers.Layer):
        '''Shares its name with keras_hub's TransformerEncoder, computes something else.'''

        def __init__(self, intermediate_dim, num_heads, **kwargs):
            super().__init__(**kwargs)
            self.intermediate_dim = intermediate_dim
            self.num_heads = num_heads
            self.ffn = keras.layers.Dense(intermediate_dim, activation="relu")

        def call(self, x):
            return tf.reduce_mean(self.ffn(x), axis=-1, keepdims=True) * x

        def get_config(self):
            return {**super().get_config(), "intermediate_dim": self.intermediate_dim, "num_heads": self.num_heads}


    class TokenAndPositionEmbedding(keras.layers.Layer):
        def __init__(self, vocabulary_size, sequence_length, embedding_dim, **kwargs):
            super().__init__(**kwargs)
            self.vocabulary_size = vocabulary_size
            self.sequence_length = sequence_length
            self.embedding_dim = embedding_dim
            self.token_emb = keras.layers.Embedding(vocabulary_size, embedding_dim)
            self.pos_emb = keras.layers.Embedding(sequence_length, embedding_dim)

        def call(self, x):
            positions = tf.range(start=0, limit=self.sequence_length, delta=1)
            return self.token_emb(x) + self.pos_emb(positions)

        def get_config(self):
            return {**super().get_config(), "vocabulary_size": self.vocabulary_size,
                    "sequence_length": self.sequence_length, "embedding_dim": self.embedding_dim}


    def build_model():
        inputs = keras.Input((6,), dtype="int32")
        x = TokenAndPositionEmbedding(10, 6, 4, name="embed")(inputs)
        x = keras.layers.Flatten()(x)
        x = TransformerEncoder(8, 2, name="encoder")(x)
        return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
"""


def test_user_classes_named_like_keras_hub_are_traced_not_taken_for_it(tmp_path, capsys):
    code = convert_with_custom_code(tmp_path, "corpus_clash", NAME_CLASH)
    assert "class TransformerEncoder(nn.Module):" in code
    assert "class TokenAndPositionEmbedding(nn.Module):" in code
    capsys.readouterr()
    # Without the code, both are reported as custom classes whose code is missing.
    assert cli.main(["inspect", str(tmp_path / "corpus_clash.keras")]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert " NO " in rows["encoder"] and " NO " in rows["embed"]
    assert "--custom-code" in rows["embed"]


CUSTOM_REGULARIZER = """
    import keras
    from keras import ops


    @keras.saving.register_keras_serializable(package="corpus_reg")
    class L1Capped(keras.regularizers.Regularizer):
        def __init__(self, strength=0.01, cap=1.0):
            self.strength = strength
            self.cap = cap

        def __call__(self, x):
            return self.strength * ops.minimum(ops.sum(ops.abs(x)), self.cap)

        def get_config(self):
            return {"strength": self.strength, "cap": self.cap}


    @keras.saving.register_keras_serializable(package="corpus_reg")
    class NonNegative(keras.constraints.Constraint):
        def __call__(self, w):
            return w * ops.cast(ops.greater_equal(w, 0.0), w.dtype)


    def build_model():
        inputs = keras.Input((5,))
        x = keras.layers.Dense(4, kernel_regularizer=L1Capped(0.02), kernel_constraint=NonNegative(), name="dense")(inputs)
        return keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
"""


def test_verify_loads_a_model_with_custom_regularizer_given_its_code(tmp_path, capsys):
    module_path = _write_module(tmp_path, "corpus_reg", CUSTOM_REGULARIZER)
    model = _import(module_path).build_model()
    path = tmp_path / "reg.keras"
    model.save(str(path))
    sys.modules.pop("corpus_reg")
    keras.saving.get_custom_objects().pop("corpus_reg>L1Capped")  # a fresh process: the class is unknown
    keras.saving.get_custom_objects().pop("corpus_reg>NonNegative")
    assert cli.main(["verify", str(path), "--outputs-only"]) == 2
    err = capsys.readouterr().err
    assert "--custom-code" in err and "Traceback" not in err
    assert cli.main(["verify", str(path), "--outputs-only", "--custom-code", str(module_path)]) == 0
    assert "OK" in capsys.readouterr().out


TWO_BLOCKERS = """
    import keras
    import tensorflow as tf


    class SingularValues(keras.layers.Layer):
        def call(self, x):
            return tf.linalg.svd(tf.reshape(x, (-1, 2, 2)), compute_uv=False)


    class Unshipped(keras.layers.Layer):
        def call(self, x):
            return x * 2.0


    def build_model():
        inputs = keras.Input((4,))
        a = SingularValues(name="svd")(inputs)
        b = Unshipped(name="unshipped")(inputs)
        return keras.Model(inputs, [a, b])
"""


def test_every_blocker_in_one_message_tracing_included(tmp_path, capsys):
    module_path = _write_module(tmp_path, "corpus_blockers", TWO_BLOCKERS)
    model = _import(module_path).build_model()
    path = tmp_path / "blockers.keras"
    model.save(str(path))
    # The code given defines SingularValues only: Unshipped's is missing.
    partial = _write_module(tmp_path, "corpus_blockers_partial", TWO_BLOCKERS.replace("class Unshipped", "class Other"))
    out = tmp_path / "out"
    assert cli.main(["convert", str(path), "-o", str(out), "--custom-code", str(partial)]) == 2
    err = capsys.readouterr().err
    assert "2 layer(s) cannot be converted" in err, err
    assert "svd (SingularValues)" in err and "Svd" in err
    assert "unshipped (Unshipped)" in err and "--custom-code" in err
    assert "Traceback" not in err and not out.exists()


PIXEL_CNN = """
    import keras
    import numpy as np
    from keras import layers, ops


    class PixelConvLayer(layers.Layer):
        '''A Conv2D whose kernel is masked (assigned) in call(), as in Keras' PixelCNN example.'''

        def __init__(self, mask_type, conv_config=None, **kwargs):
            super().__init__(**kwargs)
            self.mask_type = mask_type
            self.conv_config = dict(conv_config or {})
            self.conv = layers.Conv2D(**self.conv_config)

        def build(self, input_shape):
            self.conv.build(input_shape)
            kernel_shape = ops.shape(self.conv.kernel)
            self.mask = np.zeros(shape=kernel_shape, dtype="float32")
            self.mask[: kernel_shape[0] // 2, ...] = 1.0
            self.mask[kernel_shape[0] // 2, : kernel_shape[1] // 2, ...] = 1.0
            if self.mask_type == "B":
                self.mask[kernel_shape[0] // 2, kernel_shape[1] // 2, ...] = 1.0

        def call(self, inputs):
            self.conv.kernel.assign(self.conv.kernel * self.mask)
            return self.conv(inputs)

        def get_config(self):
            return {**super().get_config(), "mask_type": self.mask_type, "conv_config": self.conv_config}


    class ResidualBlock(layers.Layer):
        def __init__(self, filters, **kwargs):
            super().__init__(**kwargs)
            self.filters = filters
            self.conv1 = layers.Conv2D(filters=filters, kernel_size=1, activation="relu")
            self.pixel_conv = PixelConvLayer(
                mask_type="B", conv_config=dict(filters=filters // 2, kernel_size=3, activation="relu", padding="same")
            )
            self.conv2 = layers.Conv2D(filters=filters, kernel_size=1, activation="relu")

        def call(self, inputs):
            x = self.conv1(inputs)
            x = self.pixel_conv(x)
            x = self.conv2(x)
            return layers.add([inputs, x])

        def get_config(self):
            return {**super().get_config(), "filters": self.filters}


    def build_model():
        inputs = keras.Input(shape=(9, 10, 1))
        x = PixelConvLayer(mask_type="A", conv_config=dict(filters=8, kernel_size=5, activation="relu", padding="same"),
                           name="masked_a")(inputs)
        x = ResidualBlock(filters=8, name="residual")(x)
        x = PixelConvLayer(mask_type="B", conv_config=dict(filters=8, kernel_size=1, activation="relu", padding="valid"),
                           name="masked_b")(x)
        out = layers.Conv2D(filters=1, kernel_size=1, activation="sigmoid", padding="valid", name="head")(x)
        return keras.Model(inputs, out)
"""


def test_pixel_cnn_masked_kernels_assigned_in_call(tmp_path):
    """A kernel masked in call(): the mask stays a buffer multiplied in on every call."""
    code = convert_with_custom_code(tmp_path, "corpus_pixelcnn", PIXEL_CNN)
    assert "class MaskedConv2d(nn.Conv2d):" in code and "self.weight * self.mask" in code


SUBCLASSED = """
    import keras
    import numpy as np
    import tensorflow as tf
    from keras import layers


    @keras.saving.register_keras_serializable(package="corpus_subclassed")
    class GatedRegressor(keras.Model):
        '''A subclassed model: no layer graph in its config, only its code.'''

        def __init__(self, hidden=8, outputs=3, **kwargs):
            super().__init__(**kwargs)
            self.hidden = hidden
            self.outputs_count = outputs
            self.proj = layers.Dense(hidden, activation="relu")
            self.gate = layers.Dense(hidden, activation="sigmoid")
            self.norm = layers.LayerNormalization(epsilon=1e-3)
            self.dropout = layers.Dropout(0.3)
            self.head = layers.Dense(outputs)

        def call(self, x, training=False):
            h = self.proj(x) * self.gate(x)
            h = self.dropout(self.norm(tf.sin(h) + h), training=training)
            return self.head(h)

        def get_config(self):
            return {**super().get_config(), "hidden": self.hidden, "outputs": self.outputs_count}


    def build_model():
        model = GatedRegressor(hidden=8, outputs=3)
        model(np.zeros((1, 6), "float32"))
        return model
"""


def test_subclassed_model_is_traced_whole(tmp_path, capsys):
    module_path = _write_module(tmp_path, "corpus_subclassed", SUBCLASSED)
    model = _import(module_path).build_model()
    rng = np.random.default_rng(0)
    model.set_weights([w + rng.normal(0, 0.2, w.shape).astype("float32") for w in model.get_weights()])
    path = tmp_path / "subclassed.keras"
    model.save(str(path))
    out = tmp_path / "out"
    assert cli.main(["convert", str(path), "-o", str(out)]) == 2
    assert "--custom-code" in capsys.readouterr().err and not out.exists()
    assert cli.main(["convert", str(path), "-o", str(out), "--custom-code", str(module_path)]) == 0
    assert "torch.sin(" in (out / "model.py").read_text()
    x = rng.standard_normal((5, 6)).astype("float32")
    want = np.asarray(model(x, training=False))
    (got,) = _run_generated(out, [x])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1.0, float(np.abs(want).max())))
    capsys.readouterr()
    assert cli.main(["verify", str(path), "--custom-code", str(module_path)]) == 0  # outputs only: no layer graph
    assert "Result: OK" in capsys.readouterr().out


def test_inspect_with_custom_code_says_how_each_layer_converts(tmp_path, capsys):
    module_path = _write_module(tmp_path, "corpus_inspect", SIN_LAYER.replace("corpus_sin", "corpus_inspect"))
    model = _import(module_path).build_model()
    path = tmp_path / "inspect.keras"
    model.save(str(path))
    assert cli.main(["inspect", str(path)]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert " NO " in rows["sine"] and "--custom-code" in rows["sine"]
    assert cli.main(["inspect", str(path), "--custom-code", str(module_path)]) == 0
    text = capsys.readouterr().out
    rows = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert rows["sine"].split()[-1] == "traced" and "(None, 5)" in rows["sine"]
    assert rows["proj"].split()[-1] == "yes"
    assert "0 unsupported" in text


TF_KERAS_LAYER = """
    import tensorflow as tf
    import tf_keras


    @tf_keras.utils.register_keras_serializable(package="corpus_tf_keras")
    class SinGate(tf_keras.layers.Layer):
        '''tf.keras (Keras 2): a Dense sub-layer and a slice of the input.'''

        def __init__(self, units=4, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.dense = tf_keras.layers.Dense(units)

        def call(self, x):
            return tf.sin(self.dense(x)) + x[:, :1]

        def get_config(self):
            return {**super().get_config(), "units": self.units}


    def build_model():
        inputs = tf_keras.Input((5,))
        x = SinGate(4, name="gate")(inputs)
        return tf_keras.Model(inputs, tf_keras.layers.Dense(2, name="head")(x))
"""


def test_tf_keras_h5_custom_layer(tmp_path):
    pytest.importorskip("tf_keras")
    code = convert_with_custom_code(tmp_path, "corpus_tf_keras", TF_KERAS_LAYER, ".h5")
    assert "torch.sin(" in code


def test_inspect_subclassed_model(tmp_path, capsys):
    module_path = _write_module(tmp_path, "corpus_inspect_sub", SUBCLASSED.replace("corpus_subclassed", "corpus_inspect_sub"))
    model = _import(module_path).build_model()
    path = tmp_path / "subclassed.keras"
    model.save(str(path))
    assert cli.main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "GatedRegressor" in out and " NO " in out and "--custom-code" in out
    assert cli.main(["inspect", str(path), "--custom-code", str(module_path)]) == 0
    out = capsys.readouterr().out
    assert "traced" in out and "0 unsupported" in out


MLP_MIXER = """
    import keras
    from keras import layers, ops


    @keras.saving.register_keras_serializable(package="corpus_mixer")
    class MLPMixerLayer(layers.Layer):
        '''Token mixing across patches, then channel mixing, as in Keras' MLP-Mixer example.'''

        def __init__(self, num_patches, hidden_units, dropout_rate=0.2, **kwargs):
            super().__init__(**kwargs)
            self.num_patches = num_patches
            self.hidden_units = hidden_units
            self.dropout_rate = dropout_rate
            self.mlp1 = keras.Sequential([layers.Dense(num_patches, activation="gelu"), layers.Dense(num_patches),
                                          layers.Dropout(dropout_rate)])
            self.mlp2 = keras.Sequential([layers.Dense(num_patches, activation="gelu"), layers.Dense(hidden_units),
                                          layers.Dropout(dropout_rate)])
            self.normalize = layers.LayerNormalization(epsilon=1e-6)

        def call(self, inputs):
            x = self.normalize(inputs)
            x_channels = ops.transpose(x, axes=(0, 2, 1))
            mlp1_outputs = ops.transpose(self.mlp1(x_channels), axes=(0, 2, 1))
            x = mlp1_outputs + inputs
            return x + self.mlp2(self.normalize(x))

        def get_config(self):
            return {**super().get_config(), "num_patches": self.num_patches, "hidden_units": self.hidden_units,
                    "dropout_rate": self.dropout_rate}


    def build_model():
        inputs = keras.Input((10, 9, 3))
        patches = layers.Conv2D(6, 3, strides=3, name="patchify")(inputs)  # 3 x 3 = 9 patches
        x = layers.Reshape((9, 6))(patches)
        x = MLPMixerLayer(9, 6, name="mixer_1")(x)
        x = MLPMixerLayer(9, 6, name="mixer_2")(x)
        x = layers.GlobalAveragePooling1D()(x)
        return keras.Model(inputs, layers.Dense(4, name="head")(x))
"""


def test_mlp_mixer_dense_sub_layers_on_rank_3_inputs(tmp_path):
    """Dense sub-layers on (batch, patches, channels): Tensordot with run-time shape arithmetic."""
    code = convert_with_custom_code(tmp_path, "corpus_mixer", MLP_MIXER)
    assert "nn.Linear(" in code


TEXT_TRANSFORMER = """
    import keras
    from keras import layers, ops


    @keras.saving.register_keras_serializable(package="corpus_text")
    class TransformerBlock(layers.Layer):
        def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kwargs):
            super().__init__(**kwargs)
            self.embed_dim, self.num_heads, self.ff_dim, self.rate = embed_dim, num_heads, ff_dim, rate
            self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.ffn = keras.Sequential([layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)])
            self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
            self.dropout1 = layers.Dropout(rate)
            self.dropout2 = layers.Dropout(rate)

        def call(self, inputs):
            attn_output = self.dropout1(self.att(inputs, inputs))
            out1 = self.layernorm1(inputs + attn_output)
            return self.layernorm2(out1 + self.dropout2(self.ffn(out1)))

        def get_config(self):
            return {**super().get_config(), "embed_dim": self.embed_dim, "num_heads": self.num_heads,
                    "ff_dim": self.ff_dim, "rate": self.rate}


    @keras.saving.register_keras_serializable(package="corpus_text")
    class TokenAndPositionEmbedding(layers.Layer):
        def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.maxlen, self.vocab_size, self.embed_dim = maxlen, vocab_size, embed_dim
            self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

        def call(self, x):
            maxlen = ops.shape(x)[-1]  # a run-time bound for the positions
            positions = self.pos_emb(ops.arange(start=0, stop=maxlen, step=1))
            return self.token_emb(x) + positions

        def get_config(self):
            return {**super().get_config(), "maxlen": self.maxlen, "vocab_size": self.vocab_size,
                    "embed_dim": self.embed_dim}


    def build_model():
        inputs = layers.Input(shape=(None,), dtype="int32")  # any length up to maxlen
        x = TokenAndPositionEmbedding(11, 20, 8, name="embedding")(inputs)
        x = TransformerBlock(8, 2, 12, name="block")(x)
        x = layers.GlobalAveragePooling1D()(x)
        x = layers.Dropout(0.1)(x)
        x = layers.Dense(6, activation="relu")(x)
        return keras.Model(inputs, layers.Dense(2, activation="softmax", name="head")(x))
"""


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_text_transformer_with_run_time_positions(tmp_path, suffix):
    code = convert_with_custom_code(tmp_path, "corpus_text", TEXT_TRANSFORMER, suffix)
    assert "torch.arange(" in code


VIT_PATCHES = """
    import keras
    from keras import layers, ops


    @keras.saving.register_keras_serializable(package="corpus_vit")
    class Patches(layers.Layer):
        def __init__(self, patch_size, **kwargs):
            super().__init__(**kwargs)
            self.patch_size = patch_size

        def call(self, images):
            batch_size, height, width, channels = (ops.shape(images)[i] for i in range(4))
            patches = keras.ops.image.extract_patches(images, size=self.patch_size)
            count = (height // self.patch_size) * (width // self.patch_size)
            return ops.reshape(patches, (batch_size, count, self.patch_size * self.patch_size * channels))

        def get_config(self):
            return {**super().get_config(), "patch_size": self.patch_size}


    @keras.saving.register_keras_serializable(package="corpus_vit")
    class PatchEncoder(layers.Layer):
        def __init__(self, num_patches, projection_dim, **kwargs):
            super().__init__(**kwargs)
            self.num_patches, self.projection_dim = num_patches, projection_dim
            self.projection = layers.Dense(units=projection_dim)
            self.position_embedding = layers.Embedding(input_dim=num_patches, output_dim=projection_dim)

        def call(self, patch):
            positions = ops.expand_dims(ops.arange(start=0, stop=self.num_patches, step=1), axis=0)
            return self.projection(patch) + self.position_embedding(positions)

        def get_config(self):
            return {**super().get_config(), "num_patches": self.num_patches, "projection_dim": self.projection_dim}


    def build_model():
        inputs = keras.Input((15, 12, 3))
        patches = Patches(3, name="patches")(inputs)  # 5 x 4 = 20 patches
        encoded = PatchEncoder(20, 8, name="patch_encoder")(patches)
        x1 = layers.LayerNormalization(epsilon=1e-6)(encoded)
        attention = layers.MultiHeadAttention(num_heads=2, key_dim=8, dropout=0.1)(x1, x1)
        x2 = layers.Add()([attention, encoded])
        x3 = layers.LayerNormalization(epsilon=1e-6)(x2)
        x3 = layers.Dense(12, activation="gelu")(x3)
        x3 = layers.Dense(8, activation="gelu")(x3)
        x = layers.Add()([x3, x2])
        x = layers.Flatten()(layers.LayerNormalization(epsilon=1e-6)(x))
        return keras.Model(inputs, layers.Dense(5, name="head")(x))
"""


def test_vit_patch_extraction_and_encoder(tmp_path):
    convert_with_custom_code(tmp_path, "corpus_vit", VIT_PATCHES)


SEQ2SEQ = """
    import keras
    from keras import layers, ops


    @keras.saving.register_keras_serializable(package="corpus_seq2seq")
    class PositionalEmbedding(layers.Layer):
        def __init__(self, sequence_length, vocab_size, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.sequence_length, self.vocab_size, self.embed_dim = sequence_length, vocab_size, embed_dim
            self.token_embeddings = layers.Embedding(vocab_size, embed_dim)
            self.position_embeddings = layers.Embedding(sequence_length, embed_dim)

        def call(self, inputs):
            positions = ops.arange(0, ops.shape(inputs)[-1], 1)
            return self.token_embeddings(inputs) + self.position_embeddings(positions)

        def compute_mask(self, inputs, mask=None):
            return ops.not_equal(inputs, 0)

        def get_config(self):
            return {**super().get_config(), "sequence_length": self.sequence_length, "vocab_size": self.vocab_size,
                    "embed_dim": self.embed_dim}


    @keras.saving.register_keras_serializable(package="corpus_seq2seq")
    class TransformerEncoder(layers.Layer):
        def __init__(self, embed_dim, dense_dim, num_heads, **kwargs):
            super().__init__(**kwargs)
            self.embed_dim, self.dense_dim, self.num_heads = embed_dim, dense_dim, num_heads
            self.attention = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.dense_proj = keras.Sequential([layers.Dense(dense_dim, activation="relu"), layers.Dense(embed_dim)])
            self.layernorm_1 = layers.LayerNormalization()
            self.layernorm_2 = layers.LayerNormalization()
            self.supports_masking = True

        def call(self, inputs, mask=None):
            padding_mask = ops.cast(mask[:, None, :], dtype="int32") if mask is not None else None
            attention_output = self.attention(query=inputs, value=inputs, key=inputs, attention_mask=padding_mask)
            proj_input = self.layernorm_1(inputs + attention_output)
            return self.layernorm_2(proj_input + self.dense_proj(proj_input))

        def get_config(self):
            return {**super().get_config(), "embed_dim": self.embed_dim, "dense_dim": self.dense_dim,
                    "num_heads": self.num_heads}


    @keras.saving.register_keras_serializable(package="corpus_seq2seq")
    class TransformerDecoder(layers.Layer):
        def __init__(self, embed_dim, latent_dim, num_heads, **kwargs):
            super().__init__(**kwargs)
            self.embed_dim, self.latent_dim, self.num_heads = embed_dim, latent_dim, num_heads
            self.attention_1 = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.attention_2 = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.dense_proj = keras.Sequential([layers.Dense(latent_dim, activation="relu"), layers.Dense(embed_dim)])
            self.layernorm_1 = layers.LayerNormalization()
            self.layernorm_2 = layers.LayerNormalization()
            self.layernorm_3 = layers.LayerNormalization()
            self.supports_masking = True

        def call(self, inputs, encoder_outputs, mask=None):
            causal_mask = self.get_causal_attention_mask(inputs)
            padding_mask = None
            if mask is not None:
                padding_mask = ops.minimum(ops.cast(mask[:, None, :], dtype="int32"), causal_mask)
            attention_output_1 = self.attention_1(query=inputs, value=inputs, key=inputs, attention_mask=causal_mask)
            out_1 = self.layernorm_1(inputs + attention_output_1)
            attention_output_2 = self.attention_2(query=out_1, value=encoder_outputs, key=encoder_outputs,
                                                  attention_mask=padding_mask)
            out_2 = self.layernorm_2(out_1 + attention_output_2)
            return self.layernorm_3(out_2 + self.dense_proj(out_2))

        def get_causal_attention_mask(self, inputs):
            length = ops.shape(inputs)[1]
            i = ops.arange(length)[:, None]
            j = ops.arange(length)
            mask = ops.cast(i >= j, dtype="int32")[None, :, :]
            return ops.tile(mask, [ops.shape(inputs)[0], 1, 1])  # run-time multiples

        def get_config(self):
            return {**super().get_config(), "embed_dim": self.embed_dim, "latent_dim": self.latent_dim,
                    "num_heads": self.num_heads}


    def build_model():
        encoder_inputs = keras.Input(shape=(None,), dtype="int32", name="encoder_inputs")
        x = PositionalEmbedding(16, 12, 8, name="source_embedding")(encoder_inputs)
        encoder_outputs = TransformerEncoder(8, 16, 2, name="encoder")(x)
        decoder_inputs = keras.Input(shape=(None,), dtype="int32", name="decoder_inputs")
        x = PositionalEmbedding(16, 12, 8, name="target_embedding")(decoder_inputs)
        x = TransformerDecoder(8, 16, 2, name="decoder")(x, encoder_outputs)
        return keras.Model([encoder_inputs, decoder_inputs], layers.Dense(12, activation="softmax", name="head")(x))
"""


def test_seq2seq_transformer_with_causal_and_padding_masks(tmp_path):
    convert_with_custom_code(tmp_path, "corpus_seq2seq", SEQ2SEQ)


INVOLUTION = """
    import keras
    import tensorflow as tf


    @keras.saving.register_keras_serializable(package="corpus_involution")
    class Involution(keras.layers.Layer):
        '''Kernels generated per pixel from the input, applied to its patches (Keras' involution example).'''

        def __init__(self, channel, group_number, kernel_size, reduction_ratio, **kwargs):
            super().__init__(**kwargs)
            self.channel, self.group_number = channel, group_number
            self.kernel_size, self.reduction_ratio = kernel_size, reduction_ratio

        def build(self, input_shape):
            _, height, width, num_channels = input_shape
            k = self.kernel_size
            self.kernel_gen = keras.Sequential([
                keras.layers.Conv2D(filters=self.channel // self.reduction_ratio, kernel_size=1),
                keras.layers.BatchNormalization(),
                keras.layers.ReLU(),
                keras.layers.Conv2D(filters=k * k * self.group_number, kernel_size=1),
            ])
            self.kernel_reshape = keras.layers.Reshape((height, width, k * k, 1, self.group_number))
            self.input_patches_reshape = keras.layers.Reshape(
                (height, width, k * k, num_channels // self.group_number, self.group_number))
            self.output_reshape = keras.layers.Reshape((height, width, num_channels))

        def call(self, x):
            kernel = self.kernel_reshape(self.kernel_gen(x))
            k = self.kernel_size
            input_patches = tf.image.extract_patches(images=x, sizes=[1, k, k, 1], strides=[1, 1, 1, 1],
                                                     rates=[1, 1, 1, 1], padding="SAME")
            output = tf.reduce_sum(tf.multiply(kernel, self.input_patches_reshape(input_patches)), axis=3)
            return self.output_reshape(output), kernel

        def get_config(self):
            return {**super().get_config(), "channel": self.channel, "group_number": self.group_number,
                    "kernel_size": self.kernel_size, "reduction_ratio": self.reduction_ratio}


    def build_model():
        inputs = keras.Input((9, 11, 4))
        x, _ = Involution(channel=4, group_number=2, kernel_size=3, reduction_ratio=2, name="involution_1")(inputs)
        x = keras.layers.ReLU()(x)
        x, _ = Involution(channel=4, group_number=1, kernel_size=5, reduction_ratio=2, name="involution_2")(x)
        return keras.Model(inputs, keras.layers.Conv2D(3, 1, name="head")(x))
"""


def test_involution_kernels_generated_from_the_input(tmp_path):
    convert_with_custom_code(tmp_path, "corpus_involution", INVOLUTION)


GNN = """
    import keras
    import numpy as np
    import tensorflow as tf
    from keras import layers


    @keras.saving.register_keras_serializable(package="corpus_gnn")
    class GraphConvLayer(layers.Layer):
        '''Messages along a fixed edge list, aggregated per node with segment ops (Keras' GNN example).'''

        def __init__(self, units, edges, num_nodes, aggregation="sum", **kwargs):
            super().__init__(**kwargs)
            self.units, self.edges, self.num_nodes, self.aggregation = units, edges, num_nodes, aggregation
            self.ffn_prepare = layers.Dense(units, activation="gelu")
            self.update_fn = layers.Dense(units, activation="gelu")

        def call(self, node_repr):
            sources, targets = np.asarray(self.edges, "int32").T
            messages = self.ffn_prepare(tf.gather(node_repr, sources, axis=1))  # (batch, edges, units)
            by_edge = tf.transpose(messages, [1, 0, 2])
            if self.aggregation == "sum":
                aggregated = tf.math.unsorted_segment_sum(by_edge, targets, num_segments=self.num_nodes)
            elif self.aggregation == "mean":
                aggregated = tf.math.unsorted_segment_mean(by_edge, targets, num_segments=self.num_nodes)
            else:
                aggregated = tf.math.unsorted_segment_max(by_edge, targets, num_segments=self.num_nodes)
            aggregated = tf.transpose(aggregated, [1, 0, 2])
            return self.update_fn(tf.concat([node_repr, aggregated], axis=-1))

        def get_config(self):
            return {**super().get_config(), "units": self.units, "edges": self.edges, "num_nodes": self.num_nodes,
                    "aggregation": self.aggregation}


    EDGES = [[0, 1], [1, 2], [2, 0], [3, 1], [4, 3], [1, 4], [2, 4], [0, 3]]


    def build_model():
        inputs = keras.Input((5, 6))
        x = GraphConvLayer(8, EDGES, 5, "sum", name="conv_sum")(inputs)
        x = GraphConvLayer(8, EDGES, 5, "mean", name="conv_mean")(x)
        x = GraphConvLayer(8, EDGES, 5, "max", name="conv_max")(x)
        return keras.Model(inputs, layers.Dense(3, name="head")(x))
"""


def test_gnn_with_segment_ops(tmp_path):
    convert_with_custom_code(tmp_path, "corpus_gnn", GNN)


SWIN = """
    import keras
    import numpy as np
    from keras import layers, ops


    def window_partition(x, window_size):
        _, height, width, channels = x.shape
        x = ops.reshape(x, (-1, height // window_size, window_size, width // window_size, window_size, channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, window_size, window_size, channels))


    def window_reverse(windows, window_size, height, width, channels):
        x = ops.reshape(windows, (-1, height // window_size, width // window_size, window_size, window_size, channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, height, width, channels))


    @keras.saving.register_keras_serializable(package="corpus_swin")
    class SwinBlock(layers.Layer):
        '''Shifted-window attention with a relative position bias table (Keras' Swin example, condensed).'''

        def __init__(self, dim, num_heads, window_size, shift_size, **kwargs):
            super().__init__(**kwargs)
            self.dim, self.num_heads, self.window_size, self.shift_size = dim, num_heads, window_size, shift_size
            self.qkv = layers.Dense(dim * 3)
            self.proj = layers.Dense(dim)
            self.norm = layers.LayerNormalization(epsilon=1e-5)

        def build(self, input_shape):
            _, height, width, _ = input_shape
            w = self.window_size
            self.relative_position_bias_table = self.add_weight(
                shape=((2 * w - 1) * (2 * w - 1), self.num_heads), initializer="random_normal", name="bias_table")
            coords = np.stack(np.meshgrid(np.arange(w), np.arange(w), indexing="ij")).reshape(2, -1)
            relative = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (w - 1)
            self.relative_position_index = (relative[..., 0] * (2 * w - 1) + relative[..., 1]).reshape(-1)
            self.attn_mask = None
            if self.shift_size:
                img = np.zeros((1, height, width, 1), "float32")
                cuts = (slice(0, -w), slice(-w, -self.shift_size), slice(-self.shift_size, None))
                count = 0
                for h in cuts:
                    for v in cuts:
                        img[:, h, v, :] = count
                        count += 1
                windows = window_partition(ops.convert_to_tensor(img), w)
                windows = ops.convert_to_numpy(windows).reshape(-1, w * w)
                diff = windows[:, None, :] - windows[:, :, None]
                self.attn_mask = np.where(diff != 0, -100.0, 0.0).astype("float32")
            self.qkv.build((None, self.dim))
            self.proj.build((None, self.dim))
            self.norm.build(input_shape)

        def call(self, x):
            _, height, width, channels = x.shape
            w, heads = self.window_size, self.num_heads
            shortcut = x
            x = self.norm(x)
            if self.shift_size:
                x = ops.roll(x, shift=(-self.shift_size, -self.shift_size), axis=(1, 2))
            windows = ops.reshape(window_partition(x, w), (-1, w * w, channels))
            qkv = ops.transpose(ops.reshape(self.qkv(windows), (-1, w * w, 3, heads, channels // heads)),
                                (2, 0, 3, 1, 4))
            q, k, v = qkv[0] * (channels // heads) ** -0.5, qkv[1], qkv[2]
            attn = q @ ops.transpose(k, (0, 1, 3, 2))
            bias = ops.take(self.relative_position_bias_table, self.relative_position_index, axis=0)
            attn = attn + ops.expand_dims(ops.transpose(ops.reshape(bias, (w * w, w * w, -1)), (2, 0, 1)), 0)
            if self.attn_mask is not None:
                n = self.attn_mask.shape[0]
                attn = ops.reshape(attn, (-1, n, heads, w * w, w * w)) + self.attn_mask[None, :, None]
                attn = ops.reshape(attn, (-1, heads, w * w, w * w))
            out = ops.reshape(ops.transpose(ops.softmax(attn, axis=-1) @ v, (0, 2, 1, 3)), (-1, w * w, channels))
            out = window_reverse(ops.reshape(self.proj(out), (-1, w, w, channels)), w, height, width, channels)
            if self.shift_size:
                out = ops.roll(out, shift=(self.shift_size, self.shift_size), axis=(1, 2))
            return shortcut + out

        def get_config(self):
            return {**super().get_config(), "dim": self.dim, "num_heads": self.num_heads,
                    "window_size": self.window_size, "shift_size": self.shift_size}


    def build_model():
        inputs = keras.Input((8, 12, 3))
        x = layers.Dense(8, name="embed")(inputs)
        x = SwinBlock(8, 2, 4, 0, name="swin_0")(x)
        x = SwinBlock(8, 2, 4, 2, name="swin_1")(x)
        x = layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, layers.Dense(3, name="head")(x))
"""


def test_swin_shifted_window_attention(tmp_path):
    convert_with_custom_code(tmp_path, "corpus_swin", SWIN)


@pytest.mark.parametrize("name", ["MLP_MIXER", "TEXT_TRANSFORMER", "VIT_PATCHES", "INVOLUTION", "GNN", "SWIN", "PIXEL_CNN",
                                  "SEQ2SEQ", pytest.param("NER", marks=pytest.mark.slow)])
def test_corpus_as_savedmodel(tmp_path, name):
    """The same models exported as SavedModel (`model.export`): converted op by op. The module
    takes its inputs in the Keras model's order (seq2seq: encoder_inputs, then decoder_inputs;
    the signature lists them alphabetically)."""
    convert_with_custom_code(tmp_path, f"corpus_sm_{name.lower()}", globals()[name], "_savedmodel")


MASKED_CONV_BN = """
    import keras
    import numpy as np
    from keras import layers


    class MaskedConvBN(layers.Layer):
        '''A kernel masked in call(), then a BatchNorm: the two must not be folded into one
        convolution without the mask.'''

        def __init__(self, filters, **kwargs):
            super().__init__(**kwargs)
            self.filters = filters
            self.conv = layers.Conv2D(filters, 3, padding="same")
            self.bn = layers.BatchNormalization()

        def build(self, input_shape):
            self.conv.build(input_shape)
            self.bn.build(tuple(input_shape[:-1]) + (self.filters,))
            self.mask = np.zeros(self.conv.kernel.shape, dtype="float32")
            self.mask[:1] = 1.0

        def call(self, inputs):
            self.conv.kernel.assign(self.conv.kernel * self.mask)
            return self.bn(self.conv(inputs))

        def get_config(self):
            return {**super().get_config(), "filters": self.filters}


    def build_model():
        inputs = keras.Input(shape=(9, 11, 2))
        x = MaskedConvBN(4, name="masked_bn")(inputs)
        return keras.Model(inputs, layers.Flatten()(x))
"""


def test_masked_kernel_is_never_folded_with_its_batch_norm(tmp_path):
    """Eval-mode BatchNorm folding uses the convolution's weight: a masked kernel (weight *
    mask on every call) stays unfolded, in model.py and in optimize_for_inference."""
    from tf2torch import optimize_for_inference

    code = convert_with_custom_code(tmp_path, "corpus_masked_bn", MASKED_CONV_BN)
    assert "class MaskedConv2d(nn.Conv2d):" in code and "conv_bn(" not in code
    module = _import(tmp_path / "out_keras" / "model.py").load_model().eval()
    fast = optimize_for_inference(module)
    x = torch.randn(3, 2, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), module(x), rtol=1e-5, atol=1e-5)


NER = """
    import keras
    import numpy as np
    from keras import layers, ops


    @keras.saving.register_keras_serializable(package="corpus_ner")
    class TokenPositionEmbedding(layers.Layer):
        def __init__(self, maxlen, vocab_size, width, **kwargs):
            super().__init__(**kwargs)
            self.maxlen, self.vocab_size, self.width = maxlen, vocab_size, width
            self.tokens = layers.Embedding(vocab_size, width)
            self.positions = layers.Embedding(maxlen, width)

        def call(self, ids):
            steps = ops.shape(ids)[-1]
            return self.tokens(ids) + self.positions(ops.arange(0, steps, 1))

        def get_config(self):
            return {**super().get_config(), "maxlen": self.maxlen, "vocab_size": self.vocab_size, "width": self.width}


    @keras.saving.register_keras_serializable(package="corpus_ner")
    class EncoderBlock(layers.Layer):
        def __init__(self, width, heads, hidden, rate=0.1, **kwargs):
            super().__init__(**kwargs)
            self.width, self.heads, self.hidden, self.rate = width, heads, hidden, rate
            self.attention = layers.MultiHeadAttention(num_heads=heads, key_dim=width)
            self.feed_forward = keras.Sequential([layers.Dense(hidden, activation="relu"), layers.Dense(width)])
            self.norm_a = layers.LayerNormalization(epsilon=1e-6)
            self.norm_b = layers.LayerNormalization(epsilon=1e-6)
            self.drop_a = layers.Dropout(rate)
            self.drop_b = layers.Dropout(rate)

        def call(self, x, training=False):
            x = self.norm_a(x + self.drop_a(self.attention(x, x), training=training))
            return self.norm_b(x + self.drop_b(self.feed_forward(x), training=training))

        def get_config(self):
            return {**super().get_config(), "width": self.width, "heads": self.heads, "hidden": self.hidden,
                    "rate": self.rate}


    @keras.saving.register_keras_serializable(package="corpus_ner")
    class TokenTagger(keras.Model):
        '''A subclassed named-entity tagger: per-token tag probabilities.'''

        def __init__(self, num_tags=5, vocab_size=30, maxlen=16, width=8, heads=2, hidden=12, **kwargs):
            super().__init__(**kwargs)
            self.settings = dict(num_tags=num_tags, vocab_size=vocab_size, maxlen=maxlen, width=width, heads=heads,
                                 hidden=hidden)
            self.embedding = TokenPositionEmbedding(maxlen, vocab_size, width)
            self.encoder = EncoderBlock(width, heads, hidden)
            self.dropout = layers.Dropout(0.1)
            self.hidden_dense = layers.Dense(hidden, activation="relu")
            self.tags = layers.Dense(num_tags, activation="softmax")

        def call(self, ids, training=False):
            x = self.encoder(self.embedding(ids), training=training)
            x = self.dropout(x, training=training)
            return self.tags(self.hidden_dense(x))

        def get_config(self):
            return {**super().get_config(), **self.settings}


    def build_model():
        model = TokenTagger()
        model(np.zeros((1, 11), "int32"))
        model.takes_token_ids = True  # read by the test's input maker
        return model
"""


def test_subclassed_ner_model_traced_whole(tmp_path):
    """A subclassed tagger (custom embedding and encoder block inside): traced as a whole, on
    the shape it was built with. Keras records no dtype for its input; as its first step casts
    it to integers, it takes int32 token ids."""
    code = convert_with_custom_code(tmp_path, "corpus_ner", NER)
    assert "nn.Embedding(30, 8)" in code and "F.scaled_dot_product_attention(" in code
    assert "int32[N, 11]" in code and "x.to(torch.int32)" not in code


@pytest.mark.parametrize("name", ["VIT_PATCHES", "PIXEL_CNN"] + [pytest.param(name, marks=pytest.mark.slow)
                                                                 for name in ("MLP_MIXER", "INVOLUTION", "GNN", "SWIN")])
def test_corpus_as_legacy_h5(tmp_path, name):
    """The same models saved by Keras 3 as legacy `.h5` (Keras 2 cannot build them: they use
    `keras.ops`): layer configs and weights from the HDF5 file, custom layers traced. Not the
    seq2seq model: Keras writes its `.h5` but cannot load it back (`Unknown layer: 'NotEqual'`),
    so there is no reference to check a conversion against; nor the subclassed NER model's (Keras
    loads an unbuilt model: "Layer count mismatch"). The VAE's `.h5`: with the VAE test."""
    convert_with_custom_code(tmp_path, f"corpus_h5_{name.lower()}", globals()[name], ".h5")


def test_vae_encoder_with_sampling_as_savedmodel(tmp_path):
    """The VAE encoder exported as SavedModel: the random draw is a TF op in the graph
    (stateless, seeded by a variable); the module draws with torch's generator instead."""
    model = _import(_write_module(tmp_path, "corpus_sm_vae", VAE_ENCODER)).build_model()
    perturb_weights(model)
    path = tmp_path / "vae_savedmodel"
    model.export(str(path), verbose=False)
    out = tmp_path / "out"
    assert cli.main(["convert", str(path), "-o", str(out)]) == 0
    assert "torch.randn(" in (out / "model.py").read_text()
    rows = 4000
    image = np.random.default_rng(0).standard_normal((1, 12, 11, 1)).astype("float32")
    z_mean, z_log_var, _ = (np.asarray(t) for t in model(image, training=False))
    got_mean, got_log_var, z = _run_generated(out, [np.repeat(image, rows, axis=0)])
    scale = max(1.0, float(np.abs(z_mean).max()), float(np.abs(z_log_var).max()))
    np.testing.assert_allclose(got_mean, np.repeat(z_mean, rows, 0), rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(got_log_var, np.repeat(z_log_var, rows, 0), rtol=0, atol=1e-5 * scale)
    std = np.exp(0.5 * z_log_var[0])
    np.testing.assert_array_less(np.abs(z.mean(axis=0) - z_mean[0]), 5 * std / np.sqrt(rows))
    np.testing.assert_allclose(z.std(axis=0), std, rtol=0.1)
