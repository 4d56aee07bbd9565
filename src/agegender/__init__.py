"""Speaker age and gender recognition from speech spectrograms with a MAM-CNN.

After Tursunov et al., Sensors 2021, 21(17):5892. Importing the package registers the custom
Keras layers, so ``keras.models.load_model("best_model_age.keras")`` works after
``import agegender``.
"""

__version__ = "0.1.0"

from agegender import layers as _layers  # noqa: E402,F401  (registers the custom layers)
from agegender.inference import AgeGenderDetector  # noqa: E402

__all__ = ["AgeGenderDetector", "__version__"]
