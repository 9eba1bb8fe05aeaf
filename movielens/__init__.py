"""MovieLens recommender experiments in tf.keras and TensorFlow Recommenders.

TFRS refuses Keras 3, so the legacy Keras 2 (`tf-keras`) is selected here,
before anything imports TensorFlow. Import TensorFlow only after this package.
"""

import os
import sys
import warnings

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    warnings.warn("TensorFlow was imported before movielens: tf.keras may be Keras 3, which TFRS refuses. "
                  "Import movielens first (or set TF_USE_LEGACY_KERAS=1).", RuntimeWarning, stacklevel=2)
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
