"""MovieLens recommender experiments in tf.keras and TensorFlow Recommenders.

TFRS refuses Keras 3, so the legacy Keras 2 (`tf-keras`) is selected here,
before anything imports TensorFlow. Import TensorFlow only after this package.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
