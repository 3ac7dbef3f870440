"""NeuralNetwork twins of the ML Program files, for checking them where Core ML cannot run.

Off macOS nothing can execute an ML Program. Its twin is the *same* shell, traced the same way
(``export.coreml_models.trace``, same inputs, same mask value for the compute precision used) and
converted with ``convert_to="neuralnetwork"``; ``export.nnexec`` runs that. The torch frontend and
the MIL passes are shared by both backends, so the twin exercises the conversion of every op; what
it cannot see is the ML Program backend itself (its fp16 kernels, the weight file) - say so in
every result that relies on it.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Sequence

import coremltools as ct
from coremltools.proto import Model_pb2

from export.coreml_models import LABEL, PROBABILITIES, convert_encoder_neuralnetwork, shell_for_precision, token_inputs, trace
from export.shell.common import ClassifierProbabilities

TWIN_NOTE = ("ML Program checked through its NeuralNetwork twin: the same shell traced and converted with "
             "convert_to='neuralnetwork', executed by export.nnexec (Core ML cannot run ML Programs off macOS)")


@contextlib.contextmanager
def quiet():
    """coremltools prints progress bars and warnings for every conversion; keep check output readable."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


_CACHE: dict = {}


def cached(key, build):
    """Twins keyed by what they are built from (source files' identity, length, precision, labels).

    Building one takes ~1 s; repeated checks of one source folder in a process (tests, a notebook)
    reuse it. A fresh spec is parsed from the cached bytes each time, so callers may edit theirs.
    """
    if key is None:
        return build()
    if key not in _CACHE:
        _CACHE[key] = build().SerializeToString()
    spec = Model_pb2.Model()
    spec.ParseFromString(_CACHE[key])
    return spec


def source_key(model_dir) -> object:
    """Identity of a Hugging Face folder's config and weights (path, size, mtime), or None."""
    from pathlib import Path

    folder = Path(model_dir)
    files = [folder / "config.json", *sorted(folder.glob("model*.safetensors*"))]
    try:
        return (str(folder.resolve()),) + tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    except OSError:
        return None


def classifier_twin(shell, labels: Sequence[str], max_length: int, precision: str) -> Model_pb2.Model:
    """tokens -> ``label`` + ``label_probs``, a NeuralNetworkClassifier like Classifier.mlpackage.

    ``precision`` picks the attention-mask value the ML Program was built with (fp16 graphs use the
    finite fp16 minimum); the twin's weights stay float32.
    """
    traced = trace(ClassifierProbabilities(shell_for_precision(shell, precision)), max_length)
    with quiet():
        model = ct.convert(traced, inputs=token_inputs(max_length),
                           classifier_config=ct.ClassifierConfig([str(label) for label in labels],
                                                                 predicted_feature_name=LABEL),
                           convert_to="neuralnetwork")
    spec = model.get_spec()
    # the NeuralNetwork backend names the probability output var_N; give it the ML Program's name
    if spec.description.predictedProbabilitiesName != PROBABILITIES:
        ct.utils.rename_feature(spec, spec.description.predictedProbabilitiesName, PROBABILITIES)
    return spec


def encoder_twin(shell, max_length: int, embedding_size: int, precision: str) -> Model_pb2.Model:
    """tokens -> ``pooled_embedding`` (E,), like Encoder.mlpackage."""
    with quiet():
        return convert_encoder_neuralnetwork(shell, max_length, embedding_size, fp16_safe=precision == "fp16")
