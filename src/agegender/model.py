"""The MAM-CNN as a Keras functional model."""

from __future__ import annotations

from agegender.config import ModelParams
from agegender.errors import ModelError


def build_model(params: ModelParams, *, features: dict | None = None,
                trained_on: dict | None = None):
    """Builds the network of Tursunov et al. (2021).

    input (H, W, 3) in 0-255 → Rescaling 1/255 → FLB-1 → concat(FLB-1, MAM(FLB-1)) → FLB-2
    → Flatten → Dense 80 ReLU → BN → Dense softmax → LabelledOutput.

    With ``params.pitch_input`` the model has a second input, ``pitch``: the clip's voice
    statistics [len(voice_stats.STAT_NAMES)] (F0 and spectral envelope, ``voice_stats``),
    whose logits are added to the CNN's before the softmax (``_pitch_head``); the inputs
    are then the dict ``{"spectrogram": images, "pitch": statistics}``.

    Scaling is inside the model so no caller can feed it differently scaled images.
    For 64×64×3 and 6 classes it has 8 841 358 parameters; for the ``voice`` preset's
    128×64×3 (height × width) and 2 classes, 8 871 754.

    Args:
        params: model hyper-parameters (task and class names are stored in the model).
        features: ``FeatureParams`` fields of the training images, stored in the model so
            inference computes identical features.
        trained_on: what it is trained on (``provenance.trained_on``), stored in the model.

    With ``params.architecture == "voice_stats"`` it is ``voice_stats_model`` instead.

    Returns:
        An uncompiled ``keras.Model`` named ``mam_cnn_<task>``: [batch, H, W, 3] float32
        → [batch, num_classes] probabilities.
    """
    model = _build(params, features=features)
    _labels_layer(model).trained_on = dict(trained_on) if trained_on else None
    return model


def _build(params: ModelParams, *, features: dict | None):
    """``build_model`` without the ``trained_on`` record."""
    if params.architecture == "voice_stats":
        return voice_stats_model(params, features=features)
    if params.architecture == "embedding":
        return embedding_model(params, features=features)
    import keras  # noqa: PLC0415
    from keras import layers  # noqa: PLC0415

    from agegender.layers import FeatureLearningBlock, LabelledOutput, MultiAttentionModule  # noqa: PLC0415

    regulariser = keras.regularizers.L2(params.l2) if params.l2 else None
    names = list(params.class_names) or [str(i) for i in range(params.num_classes)]
    inputs = keras.Input(shape=params.input_shape, name="spectrogram")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    flb_1 = FeatureLearningBlock(params.l2, params.bn_momentum, name="flb_1")(x)
    mam = MultiAttentionModule(64, params.l2, params.bn_momentum, name="mam")(flb_1)
    x = layers.Concatenate(axis=-1, name="flb_1_mam")([flb_1, mam])
    x = FeatureLearningBlock(params.l2, params.bn_momentum, name="flb_2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(params.dense_units, activation="relu", kernel_regularizer=regulariser,
                     name="dense")(x)
    x = layers.BatchNormalization(momentum=params.bn_momentum, name="dense_bn")(x)
    if params.pitch_input or params.embedding_input:
        x, inputs = _pitch_head(x, inputs, params)
    else:
        # float32 softmax even under mixed precision, for a numerically sound loss.
        x = layers.Dense(params.num_classes, activation="softmax",
                         kernel_regularizer=regulariser, dtype="float32",
                         name="probabilities")(x)
    outputs = LabelledOutput(params.task, names, features, params.to_record(), dtype="float32",
                             name="labels")(x)
    if not isinstance(inputs, dict):
        inputs = {"spectrogram": inputs}
    return keras.Model(inputs, outputs, name=f"mam_cnn_{params.task}")


# Adam moves every weight by about the learning rate per step, whatever its gradient. The
# CNN's verdict adds up thousands of weights; the pitch head has a few dozen, so at 1e-4 it
# would need tens of thousands of steps to matter (measured: after one epoch on Common Voice
# the weight of the median F0 had moved by 0.004). Its inputs are therefore centred and
# multiplied by PITCH_BOOST and its kernels initialised PITCH_BOOST times smaller: the same
# function at the start, PITCH_BOOST times the learning rate for this head alone.
PITCH_BOOST = 30.0


def _stats_input(gain: float, dtype: str | None = None):
    """The ``pitch`` input and its standardised values, times ``gain``.

    Centred and scaled by the training corpus' statistics (``voice_stats.STAT_CENTRE``,
    ``STAT_SPREAD``), so every input starts near unit scale whatever its units.

    Args:
        gain: the standardised values are multiplied by it (the fused head's ``PITCH_BOOST``).
        dtype: the Normalization layer's dtype policy (None: the global one).

    Returns:
        (``keras.Input`` ``pitch`` [batch, len(STAT_NAMES)], its scaled values, same shape).
    """
    import keras  # noqa: PLC0415
    from keras import layers  # noqa: PLC0415

    from agegender.voice_stats import STAT_CENTRE, STAT_NAMES, STAT_SPREAD  # noqa: PLC0415

    pitch = keras.Input(shape=(len(STAT_NAMES),), name="pitch")
    scaled = layers.Normalization(mean=list(STAT_CENTRE),
                                  variance=[(spread / gain) ** 2 for spread in STAT_SPREAD],
                                  dtype=dtype, name="pitch_scale")(pitch)
    return pitch, scaled


def _pitch_head(x, image_input, params: ModelParams):
    """The ``pitch_input`` variant's end: the CNN's logits plus logits of the voice statistics.

    The pitch logits start at zero (zero kernel), so training starts from the paper's
    network and adds what F0 explains; they come both linearly from the statistics (a
    threshold on F0 is one weight) and through a 16-unit ReLU layer. With
    ``params.image_dropout`` the CNN's logits are dropped for that share of training clips
    (``ExampleDropout``): trained jointly, the CNN fits the training speakers and leaves the
    statistics head under-trained, which costs on new speakers (docs/experiments.md).

    Returns:
        (probabilities [batch, classes], the inputs dict ``{"spectrogram", "pitch"}``).
    """
    import keras  # noqa: PLC0415
    from keras import layers  # noqa: PLC0415

    from agegender.layers import ExampleDropout  # noqa: PLC0415

    regulariser = keras.regularizers.L2(params.l2) if params.l2 else None
    inputs, side_logits = {"spectrogram": image_input}, []
    if params.pitch_input:
        pitch, scaled = _stats_input(PITCH_BOOST)
        small = keras.initializers.VarianceScaling(1.0 / PITCH_BOOST**2, mode="fan_avg",
                                                   distribution="uniform", seed=0)
        hidden = layers.Dense(16, activation="relu", kernel_initializer=small,
                              name="pitch_dense")(scaled)
        side_logits.append(layers.Dense(params.num_classes, kernel_initializer="zeros",
                                        dtype="float32", name="pitch_logits")(
            layers.Concatenate(name="pitch_all")([scaled, hidden])))
        inputs["pitch"] = pitch
    image_logits = layers.Dense(params.num_classes, kernel_regularizer=regulariser,
                                dtype="float32", name="image_logits")(x)
    if params.image_dropout:
        image_logits = ExampleDropout(params.image_dropout, dtype="float32",
                                      name="image_dropout")(image_logits)
    if params.embedding_input:
        embedding, scaled = _embedding_input(PITCH_BOOST)
        side_logits.append(layers.Dense(params.num_classes, kernel_initializer="zeros",
                                        dtype="float32", name="embedding_logits")(scaled))
        inputs["embedding"] = embedding
    logits = layers.Add(dtype="float32", name="logits")([image_logits, *side_logits])
    # float32 softmax even under mixed precision, for a numerically sound loss.
    probabilities = layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return probabilities, inputs


def _embedding_input(gain: float):
    """The ``embedding`` input and its values scaled to about unit size, times ``gain``.

    The encoder's embeddings have unit norm over ``EMBEDDING_SIZE`` entries, so each entry
    is about 1/16 in size; times sqrt(EMBEDDING_SIZE) they start near unit scale like the
    standardised statistics.

    Returns:
        (``keras.Input`` ``embedding`` [batch, EMBEDDING_SIZE], its scaled values).
    """
    import keras  # noqa: PLC0415
    from keras import layers  # noqa: PLC0415

    embedding = keras.Input(shape=(EMBEDDING_SIZE,), name="embedding")
    scaled = layers.Rescaling(gain * EMBEDDING_SIZE**0.5, dtype="float32",
                              name="embedding_scale")(embedding)
    return embedding, scaled


# The voice encoder's embedding size (voice_encoder.GE2E.embedding); a constant here so that
# building a model never loads the encoder.
EMBEDDING_SIZE = 256


def embedding_model(params: ModelParams, *, features: dict | None = None):
    """A head on the clip's speaker embedding (and, with ``pitch_input``, its voice
    statistics): the ``embedding`` architecture.

    ``embedding`` [batch, 256] (``voice_encoder.embed``, unit norm) → × 16, [with the
    standardised ``pitch`` statistics concatenated] → [Dense ``head_units`` ReLU → Dropout
    0.5] → ``BoostedLinear`` → softmax → LabelledOutput. With ``head_units=0`` it is a
    logistic regression, whose weights the default learning rate moves at an effective
    3e-3 (``PITCH_BOOST``, as ``voice_stats_model``).

    Args:
        params: ``architecture="embedding"``; ``task``, ``class_names``, ``num_classes``,
            ``l2``, ``pitch_input`` and ``head_units`` are used.
        features: ``FeatureParams`` fields of the preprocessing (sample rate, duration limit),
            stored in the model for inference.

    Returns:
        An uncompiled ``keras.Model`` named ``embedding_<task>`` → [batch, num_classes].
    """
    import keras  # noqa: PLC0415
    from keras import layers  # noqa: PLC0415

    from agegender.layers import BoostedLinear, LabelledOutput  # noqa: PLC0415

    names = list(params.class_names) or [str(i) for i in range(params.num_classes)]
    embedding, x = _embedding_input(1.0)
    inputs = {"embedding": embedding}
    if params.pitch_input:
        pitch, scaled = _stats_input(1.0, dtype="float32")
        inputs["pitch"] = pitch
        x = layers.Concatenate(dtype="float32", name="embedding_pitch")([x, scaled])
    if params.head_units:
        regulariser = keras.regularizers.L2(params.l2) if params.l2 else None
        x = layers.Dense(params.head_units, activation="relu", kernel_regularizer=regulariser,
                         dtype="float32", name="head_dense")(x)
        x = layers.Dropout(0.5, dtype="float32", name="head_dropout")(x)
    logits = BoostedLinear(params.num_classes, PITCH_BOOST, params.l2, dtype="float32",
                           name="logits")(x)
    probabilities = layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    outputs = LabelledOutput(params.task, names, features, params.to_record(), dtype="float32",
                             name="labels")(probabilities)
    return keras.Model(inputs, outputs, name=f"embedding_{params.task}")


def voice_stats_model(params: ModelParams, *, features: dict | None = None):
    """A logistic regression on a clip's voice statistics, as a Keras model: no image.

    ``pitch`` [batch, len(voice_stats.STAT_NAMES)] → centred and scaled → one linear layer
    → softmax → LabelledOutput. Chosen on real Common Voice speakers: there the CNN branch
    of the fused model fits the training speakers and costs on new ones, and a 16-unit
    hidden layer did not beat the linear model on the dev split (docs/experiments.md, "Common
    Voice, fifth session"). The statistics are standardised by the training corpus' centre and
    spread (``voice_stats``), and the linear layer is ``BoostedLinear`` with
    ``PITCH_BOOST``, so the default learning rate (1e-4) moves its weights and bias at an
    effective 3e-3; its L2 penalty is on the effective kernel, so ``params.l2`` means what
    it says.

    Args:
        params: ``architecture="voice_stats"``; ``task``, ``class_names``, ``num_classes``
            and ``l2`` are used.
        features: ``FeatureParams`` fields of the preprocessing that made the statistics
            (sample rate, duration limit), stored in the model for inference.

    Returns:
        An uncompiled ``keras.Model`` named ``voice_stats_<task>``, input dict
        ``{"pitch": float32 [batch, len(STAT_NAMES)]}`` → [batch, num_classes].
    """
    import keras  # noqa: PLC0415
    from keras import layers  # noqa: PLC0415

    from agegender.layers import BoostedLinear, LabelledOutput  # noqa: PLC0415

    names = list(params.class_names) or [str(i) for i in range(params.num_classes)]
    # float32 throughout, even under a mixed policy: statistics near 50 lose their
    # decimals in bfloat16, and 92 weights cost nothing.
    pitch, scaled = _stats_input(1.0, dtype="float32")
    logits = BoostedLinear(params.num_classes, PITCH_BOOST, params.l2, dtype="float32",
                           name="logits")(scaled)
    probabilities = layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    outputs = LabelledOutput(params.task, names, features, params.to_record(), dtype="float32",
                             name="labels")(probabilities)
    return keras.Model({"pitch": pitch}, outputs, name=f"voice_stats_{params.task}")


def compile_model(model, learning_rate: float):
    """Compiles ``model`` for training as the trainer does: Adam, sparse categorical
    cross-entropy on the probabilities, accuracy, UAR (``uar``/``val_uar``, what the best
    epoch is chosen on), and the cross-entropy again as a metric
    (``crossentropy``/``val_crossentropy``): Keras adds the L2 penalty to ``loss``, so the
    fit itself is only seen there (best-epoch tie-breaks, curves).

    Call it inside the distribution strategy's scope, as the model was built.

    Args:
        model: a model from ``build_model``.
        learning_rate: Adam's learning rate.

    Returns:
        The same model, compiled.
    """
    import keras  # noqa: PLC0415

    from agegender.keras_metrics import UnweightedAverageRecall  # noqa: PLC0415

    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy",
                           UnweightedAverageRecall(int(model.output_shape[-1]), name="uar"),
                           keras.metrics.SparseCategoricalCrossentropy(name="crossentropy")])
    return model


def _labels_layer(model):
    """The model's ``LabelledOutput`` layer.

    Raises:
        ModelError: the model has no ``LabelledOutput`` layer (not one of ours).
    """
    from agegender.layers import LabelledOutput  # noqa: PLC0415

    for layer in reversed(model.layers):
        if isinstance(layer, LabelledOutput):
            return layer
    raise ModelError(f"model {model.name!r} carries no task/class names (no LabelledOutput "
                     "layer); it was not built by agegender")


def model_labels(model) -> tuple[str, list[str], dict | None]:
    """Reads (task, class names, feature params) stored in a model by ``LabelledOutput``.

    Raises:
        ModelError: the model has no ``LabelledOutput`` layer (not one of ours).
    """
    layer = _labels_layer(model)
    return layer.task, list(layer.class_names), layer.features


def model_trained_on(model) -> dict | None:
    """What a model records it was trained on (``provenance``: dataset, kind, speakers,
    clips); None for a file saved before the record existed, or not built by agegender."""
    try:
        record = _labels_layer(model).trained_on
    except ModelError:
        return None
    return dict(record) if record else None


def model_params(model) -> ModelParams:
    """The ``ModelParams`` a model was built with, as its file records them
    (``LabelledOutput``).

    Files saved before the parameters were stored are read from their structure instead
    (input names and shapes, the hidden layer's width); their ``l2`` and ``bn_momentum``
    are then the defaults, which only a copy that keeps training would notice.

    Raises:
        ModelError: not a model built by agegender (no ``LabelledOutput``).
    """
    from agegender.layers import LabelledOutput  # noqa: PLC0415

    layer = next((layer for layer in reversed(model.layers)
                  if isinstance(layer, LabelledOutput)), None)
    if layer is None:
        raise ModelError(f"model {model.name!r} carries no parameters (no LabelledOutput "
                         "layer); it was not built by agegender")
    if layer.model_params:
        return ModelParams.from_record(layer.model_params)
    return _params_from_structure(model, layer)


def _params_from_structure(model, layer) -> ModelParams:
    """``model_params`` of a file saved before ``LabelledOutput`` stored them."""
    names = [getattr(i, "name", "").split(":")[0] for i in model.inputs]
    shapes = dict(zip(names, (tuple(i.shape) for i in model.inputs), strict=True))
    image = next((name for name in names if name != "pitch"), None)
    units = {lay.name: getattr(lay, "units", None) for lay in model.layers}
    common = {"num_classes": len(layer.class_names), "task": layer.task,
              "class_names": tuple(layer.class_names)}
    if image is None:
        return ModelParams(architecture="voice_stats", pitch_input=True, **common)
    height, width = int(shapes[image][1]), int(shapes[image][2])
    return ModelParams(image_size=height, image_width=0 if width == height else width,
                       dense_units=int(units.get("dense") or 80),
                       pitch_input="pitch" in names, **common)


def input_kinds(model) -> tuple[str, ...]:
    """The named inputs a model of ours reads (``model_inputs.KINDS``), in order."""
    return model_params(model).input_kinds
