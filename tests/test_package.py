"""The package selects Keras 2 for TFRS, whatever the environment says."""

import os
import subprocess
import sys


def test_import_selects_legacy_keras():
    code = ("import movielens, tensorflow as tf, tf_keras, tensorflow_recommenders as tfrs; "
            "assert tf.keras.Model is tf_keras.Model, tf.keras; print('ok')")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "0"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")
