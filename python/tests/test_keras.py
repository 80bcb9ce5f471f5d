"""The Python package against what a Keras user expects (issue #32).

Run after `pip install .` from the repository root: `python3 -m pytest python/tests`.
The CLI comparison needs the `convnet` binary: `CONVNET_BIN`, else
`target/release/convnet` or `target/debug/convnet` of this checkout.
"""

import os
import re
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

from convnet.keras import callbacks as cb
from convnet.keras.datasets import mnist
from convnet.keras.layers import (
    Activation,
    Add,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    Input,
    MaxPool2D,
    MaxPooling2D,
    ZeroPadding2D,
)
from convnet.keras.models import Model, Sequential, load_model
from convnet.keras.optimizers import SGD, Adam
from convnet.keras import layers as L
from convnet.keras.utils import clear_session, set_random_seed, to_categorical

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def digits():
    """The first 2,000 bundled MNIST training images as Keras's tutorial prepares them."""
    (x, y), (xt, yt) = mnist.load_data()
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (60000,) and xt.shape == (10000, 28, 28)
    x = x[:2000].reshape(-1, 28, 28, 1).astype("float32") / 255
    return x, to_categorical(y[:2000], 10), y[:2000]


def test_fashion_mnist_loads_from_debian_s_package_without_a_download():
    """`apt-get install dataset-fashion-mnist` (CI installs it and sets
    CONVNET_REQUIRE_FASHION_MNIST, so that the test cannot skip there)."""
    from convnet.keras.datasets import fashion_mnist

    if not os.path.isdir(fashion_mnist.DEBIAN) and not os.environ.get("CONVNET_REQUIRE_FASHION_MNIST"):
        pytest.skip("dataset-fashion-mnist is not installed")
    (x, y), (xt, yt) = fashion_mnist.load_data(fashion_mnist.DEBIAN)
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8 and xt.shape == (10000, 28, 28)
    # Zalando's published figures: 6,000 training images per class, pixel means 72.94 and 73.15.
    assert np.bincount(y).tolist() == [6000] * 10 and np.bincount(yt).tolist() == [1000] * 10
    assert abs(x.mean() - 72.940) < 1e-3 and abs(xt.mean() - 73.147) < 1e-3
    with pytest.raises(OSError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist.load_data(os.path.join(ROOT, "no-such-folder"))


def mnist_nets(Sequential=Sequential, L=None):
    """The MNIST architecture loop of the tutorial, as it is written (in Keras's modules too)."""
    if L is not None:
        Conv2D, MaxPool2D, Flatten, Dense = L.Conv2D, L.MaxPool2D, L.Flatten, L.Dense
    else:
        from convnet.keras.layers import Conv2D, Dense, Flatten, MaxPool2D
    nets = 3
    model = [0] * nets
    for j in range(3):
        model[j] = Sequential()
        model[j].add(Conv2D(24, kernel_size=5, padding="same", activation="relu", input_shape=(28, 28, 1)))
        model[j].add(MaxPool2D())
        if j > 0:
            model[j].add(Conv2D(48, kernel_size=5, padding="same", activation="relu"))
            model[j].add(MaxPool2D())
        if j > 1:
            model[j].add(Conv2D(64, kernel_size=5, padding="same", activation="relu"))
            model[j].add(MaxPool2D(padding="same"))
        model[j].add(Flatten())
        model[j].add(Dense(256, activation="relu"))
        model[j].add(Dense(10, activation="softmax"))
        model[j].compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def seed_classifier(Sequential=Sequential, L=None):
    """The tutorial's cats-vs-dogs classifier, every layer as it is written (in Keras's modules too)."""
    if L is not None:
        Conv2D, Activation, MaxPooling2D, BatchNormalization, Dropout, Flatten, Dense = (
            L.Conv2D, L.Activation, L.MaxPooling2D, L.BatchNormalization, L.Dropout, L.Flatten, L.Dense)
    else:
        from convnet.keras.layers import (Activation, BatchNormalization, Conv2D, Dense, Dropout, Flatten,
                                          MaxPooling2D)
    classifier = Sequential()
    input_size = (128, 128)
    classifier.add(Conv2D(32, (3, 3), input_shape=(*input_size, 3)))
    classifier.add(Activation("relu"))
    classifier.add(Conv2D(32, (3, 3), activation="relu"))
    classifier.add(MaxPooling2D(pool_size=(2, 2)))
    classifier.add(BatchNormalization())
    classifier.add(Dropout(0.2))
    classifier.add(Conv2D(32, (3, 3), activation="relu"))
    classifier.add(Conv2D(32, (3, 3), activation="relu"))
    classifier.add(MaxPooling2D(pool_size=(2, 2)))
    classifier.add(BatchNormalization())
    classifier.add(Dropout(0.2))
    classifier.add(Conv2D(64, (3, 3), activation="relu"))
    classifier.add(Conv2D(64, (3, 3), activation="relu"))
    classifier.add(Conv2D(64, (3, 3), activation="relu"))
    classifier.add(MaxPooling2D(pool_size=(2, 2)))
    classifier.add(BatchNormalization())
    classifier.add(Dropout(0.2))
    classifier.add(Flatten())
    classifier.add(Dense(units=64, activation="relu"))
    classifier.add(Dropout(0.2))
    classifier.add(Dense(units=1, activation="sigmoid"))
    classifier.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return classifier


# Keras's counts for these models, by its formulas: a Conv2D has
# (kh * kw * c_in + 1) * filters, a Dense (in + 1) * units, a
# BatchNormalization 4 * channels (2 trainable, 2 moving statistics).
#   MNIST j=0: 624 + (14*14*24 + 1)*256 + 2,570
#   MNIST j=1: 624 + 28,848 + (7*7*48 + 1)*256 + 2,570
#   MNIST j=2: 624 + 28,848 + 76,864 + (4*4*64 + 1)*256 + 2,570
#   classifier: 896 + 9,248 + 128 + 9,248 + 9,248 + 128 + 18,496 + 36,928 + 36,928 + 256
#               + (11*11*64 + 1)*64 + 65 = 617,249 (128 -> 126 -> 124 -> 62 -> 60 -> 58 -> 29
#               -> 27 -> 25 -> 23 -> 11), of which 2 * (32 + 32 + 64) = 256 moving statistics
KERAS_COUNTS = [1_207_674, 634_410, 371_306]
KERAS_CLASSIFIER = (616_993, 256)


def test_the_mnist_loop_runs_as_written_with_keras_counts_and_learns(digits):
    x, y, _ = digits
    models = mnist_nets()
    for j, m in enumerate(models):
        assert m.count_params() == KERAS_COUNTS[j]
        h = m.fit(x, y, batch_size=64, epochs=2, validation_split=0.1, verbose=0)
        assert sorted(h.history) == ["accuracy", "learning_rate", "loss", "val_accuracy", "val_loss"]
        assert len(h.history["loss"]) == 2 and h.epoch == [0, 1]
        assert h.history["loss"][1] < h.history["loss"][0]
        loss, acc = m.evaluate(x[:500], y[:500])
        assert acc > 0.8, (j, acc)


def test_the_seed_classifier_builds_as_written_with_keras_counts_and_trains():
    c = seed_classifier()
    assert c.count_params() == sum(KERAS_CLASSIFIER)
    trainable, fixed = c.engine.count_params()
    assert (trainable, fixed) == KERAS_CLASSIFIER
    text = []
    c.summary(print_fn=text.append)
    assert "Total params: 617,249" in text[0] and "batch_normalization_2" in text[0]
    rng = np.random.default_rng(0)
    x = rng.random((16, 128, 128, 3), dtype=np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype("float32")
    h = c.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(h.history["loss"][0])
    p = c.predict(x[:3])
    assert p.shape == (3, 1) and p.dtype == np.float32 and ((p >= 0) & (p <= 1)).all()


def test_predict_and_evaluate_take_and_give_numpy_as_keras_does(digits):
    x, y, labels = digits
    m = mnist_nets()[0]
    p = m.predict(x[:7])
    assert p.shape == (7, 10) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    # Any numeric dtype and layout is accepted and converted.
    np.testing.assert_array_equal(m.predict(np.asfortranarray(x[:7].astype(np.float64))), p)
    loss, acc = m.evaluate(x[:100], y[:100])
    assert isinstance(loss, float) and 0 <= acc <= 1
    assert m.evaluate(x[:100], y[:100], return_dict=True) == {"loss": loss, "accuracy": acc}
    # Sparse labels with the sparse loss give the same figures as one-hot ones.
    s = Sequential([Flatten(input_shape=(28, 28, 1)), Dense(10, activation="softmax")], seed=3)
    s.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    o = Sequential([Flatten(input_shape=(28, 28, 1)), Dense(10, activation="softmax")], seed=3)
    o.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    np.testing.assert_allclose(s.evaluate(x[:50], labels[:50]), o.evaluate(x[:50], y[:50]), rtol=1e-6)
    # Losses as Keras's objects and functions name the same loss.
    from convnet.keras import losses

    o.compile(optimizer="sgd", loss=losses.CategoricalCrossentropy(), metrics=["accuracy"])
    np.testing.assert_allclose(o.evaluate(x[:50], y[:50]), s.evaluate(x[:50], labels[:50]), rtol=1e-6)
    o.compile(optimizer="sgd", loss=losses.sparse_categorical_crossentropy)
    assert o.loss == "sparse_categorical_crossentropy"
    with pytest.raises(ValueError, match="loss"):
        o.compile(optimizer="sgd", loss="hinge")


def test_bad_shapes_and_arguments_raise_value_error(digits):
    x, y, _ = digits
    m = mnist_nets()[0]
    with pytest.raises(ValueError, match="28, 28, 1"):
        m.predict(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError):
        m.fit(x[:10].reshape(10, 28, 28), y[:10], verbose=0)
    with pytest.raises(ValueError, match="samples"):
        m.fit(x[:10], y[:9], verbose=0)
    with pytest.raises(ValueError, match="10"):
        m.fit(x[:10], y[:10, :5], verbose=0)
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2D(8, (3, 3, 3))
    with pytest.raises(ValueError, match="activation"):
        Dense(3, activation="relu7")
    with pytest.raises(ValueError, match="input_shape"):
        Sequential([Dense(3)])
    with pytest.raises(ValueError, match="optimizer"):
        Sequential([Dense(3, input_shape=(4,))]).compile(optimizer="adagrad9", loss="mse")
    with pytest.raises(ValueError, match="validation_split"):
        m.fit(x[:10], y[:10], validation_split=1.5, verbose=0)
    # A model too small for its input is refused with the layer named.
    bad = Sequential([Conv2D(4, 5, input_shape=(3, 3, 1)), Flatten(), Dense(2)])
    with pytest.raises(ValueError, match="Conv2D|conv2d"):
        bad.summary()


def test_the_same_net_and_seed_give_the_same_weights_through_python_and_the_cli(digits, tmp_path):
    binary = convnet_bin()
    run = tmp_path / "cli"
    subprocess.run(
        [binary, "train", "--model", "8C3-P2-10", "--limit", "600", "--epochs", "2",
         "--batch-size", "32", "--schedule", "constant", "--loss", "categorical_crossentropy",
         "--seed", "7", "--validation-split", "0.1", "--out", str(run), "--name", "r",
         "--data-dir", os.path.join(ROOT, "data", "mnist")],
        check=True, capture_output=True,
    )
    x, y, _ = digits
    m = Sequential(seed=7)
    m.add(Conv2D(8, 3, padding="same", activation="relu", input_shape=(28, 28, 1)))
    m.add(MaxPooling2D(2))
    m.add(Flatten())
    m.add(Dense(10, activation="softmax"))
    m.compile(optimizer=Adam(), loss="categorical_crossentropy", metrics=["accuracy"])
    m.fit(x[:600], y[:600], batch_size=32, epochs=2, validation_split=0.1, verbose=0)
    cli = load_model(run / "r")
    ours, theirs = m.get_weights(), cli.get_weights()
    assert len(ours) == len(theirs) == 4
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_each_callback_has_an_effect_a_user_can_see(digits, tmp_path):
    x, y, _ = digits
    x, y = x[:300], y[:300]

    def net():
        m = Sequential([Flatten(input_shape=(28, 28, 1)), Dense(10, activation="softmax")], seed=1)
        m.compile(optimizer=SGD(learning_rate=0.1), loss="categorical_crossentropy", metrics=["accuracy"])
        return m

    # EarlyStopping: an improvement of 10 is never reached, so patience 1 ends epoch 2.
    h = net().fit(x, y, epochs=6, validation_split=0.2, verbose=0,
                  callbacks=[cb.EarlyStopping(monitor="val_loss", min_delta=10.0, patience=1)])
    assert len(h.history["loss"]) == 2
    # ReduceLROnPlateau: the same unreachable improvement divides the rate by 10 after each
    # epoch without it (Keras's rule: the first epoch sets the best, the reduction follows).
    h = net().fit(x, y, epochs=4, validation_split=0.2, verbose=0,
                  callbacks=[cb.ReduceLROnPlateau(monitor="val_loss", min_delta=10.0, patience=1, factor=0.1)])
    np.testing.assert_allclose(h.history["learning_rate"], [0.1, 0.1, 0.01, 0.001], rtol=1e-5)
    # LearningRateScheduler: the function's rates are the ones used.
    h = net().fit(x, y, epochs=3, verbose=0,
                  callbacks=[cb.LearningRateScheduler(lambda epoch, lr: 0.05 / (epoch + 1))])
    np.testing.assert_allclose(h.history["learning_rate"], [0.05, 0.025, 0.05 / 3], rtol=1e-5)
    # ModelCheckpoint: a loadable model after the epoch, the same as the trained one.
    m = net()
    m.fit(x, y, epochs=1, verbose=0, callbacks=[cb.ModelCheckpoint(tmp_path / "best", monitor="loss")])
    np.testing.assert_array_equal(load_model(tmp_path / "best").predict(x[:5]), m.predict(x[:5]))
    # CSVLogger: one row per epoch.
    net().fit(x, y, epochs=2, verbose=0, callbacks=[cb.CSVLogger(tmp_path / "log.csv")])
    rows = (tmp_path / "log.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch,loss,accuracy") and len(rows) == 3
    # A Python callback is called live, as Keras calls it: each epoch's begin, every batch's
    # end (running loss), each epoch's end with its logs; stop_training ends fit after the epoch.
    seen = []

    class Record(cb.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(("begin", epoch))

        def on_train_batch_end(self, batch, logs=None):
            seen.append(("batch", batch, sorted(logs)))

        def on_epoch_end(self, epoch, logs=None):
            seen.append(("end", epoch, round(logs["loss"], 6), sorted(logs)))
            self.model.stop_training = epoch == 1

    h = net().fit(x, y, epochs=4, batch_size=100, verbose=0, callbacks=[Record()])
    keys = ["accuracy", "learning_rate", "loss"]
    batches = [("batch", b, ["accuracy", "loss"]) for b in range(3)]
    assert h.epoch == [0, 1]
    assert seen == (
        [("begin", 0)] + batches + [("end", 0, round(h.history["loss"][0], 6), keys)]
        + [("begin", 1)] + batches + [("end", 1, round(h.history["loss"][1], 6), keys)]
    )


def test_the_functional_api_builds_graphs_with_shortcuts_and_branches(digits):
    x, y, _ = digits
    clear_session()  # Keras's automatic names from the start
    inp = Input(shape=(28, 28, 1))
    a = Conv2D(8, 3, padding="same", activation="relu")(inp)
    b = Conv2D(8, 3, padding="same")(a)
    b = BatchNormalization()(b)
    s = Activation("relu")(Add()([a, b]))
    c = Concatenate()([s, ZeroPadding2D(0)(a)])
    out = Dense(10, activation="softmax")(GlobalAveragePooling2D()(c))
    m = Model(inp, out, seed=5)
    # (9 + 1) * 8 + (72 + 1) * 8 + 4 * 8 + (16 + 1) * 10
    assert m.count_params() == 80 + 584 + 32 + 170
    text = []
    m.summary(print_fn=text.append)
    assert "Connected to" in text[0] and "conv2d_1" in text[0] and "add" in text[0]
    m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    h = m.fit(x[:256], y[:256], batch_size=32, epochs=2, verbose=0)
    assert h.history["loss"][1] < h.history["loss"][0]


def convnet_bin():
    """The CLI binary: `CONVNET_BIN`, else this checkout's target/release or target/debug."""
    binary = os.environ.get("CONVNET_BIN")
    if binary is None:
        found = [os.path.join(ROOT, "target", k, "convnet") for k in ("release", "debug")]
        found = [f for f in found if os.path.exists(f)]
        if not found:
            pytest.skip("no convnet binary (set CONVNET_BIN)")
        binary = found[0]
    return binary


def test_a_saved_model_is_a_run_folder_the_cli_opens(digits, tmp_path):
    from convnet.keras.preprocessing.image import ImageDataGenerator

    binary = convnet_bin()
    photos = os.path.join(ROOT, "data", "cats-vs-dogs")
    c = Sequential([Conv2D(4, 3, input_shape=(32, 32, 3), activation="relu"), MaxPooling2D(4),
                    Flatten(), Dense(1, activation="sigmoid")], seed=3)
    c.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    c.fit(ImageDataGenerator(rescale=1 / 255).flow_from_directory(photos, target_size=(32, 32),
                                                                   class_mode="binary"), verbose=0)
    c.save(tmp_path / "photos")
    assert (tmp_path / "photos" / "run.json").exists()
    image = os.path.join(photos, "dogs", sorted(os.listdir(os.path.join(photos, "dogs")))[0])
    out = subprocess.run([binary, "predict", str(tmp_path / "photos"), image, "--output", str(tmp_path / "p.csv")],
                         check=True, capture_output=True, text=True)
    row = (tmp_path / "p.csv").read_text().splitlines()[1].split(",")
    # The class names come from the folder the model was trained on.
    assert row[2] in ("cats", "dogs") and 0 <= float(row[-1]) <= 1, out.stdout
    # Trained on arrays: evaluate asks for the data, then agrees with Python's evaluate.
    x, y, _ = digits
    m = Sequential([Flatten(input_shape=(28, 28, 1)), Dense(10, activation="softmax")], seed=4)
    m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    m.fit(x[:500], y[:500], epochs=1, verbose=0)
    m.save(tmp_path / "digits")
    failed = subprocess.run([binary, "evaluate", str(tmp_path / "digits")], capture_output=True, text=True)
    assert failed.returncode != 0 and "give --data" in failed.stderr
    out = subprocess.run([binary, "evaluate", str(tmp_path / "digits"), "--data", "mnist",
                          "--data-dir", os.path.join(ROOT, "data", "mnist")],
                         check=True, capture_output=True, text=True).stdout
    (_, _), (xt, yt) = mnist.load_data()
    loss, acc = m.evaluate(xt.reshape(-1, 28, 28, 1).astype("float32") / 255, to_categorical(yt, 10), verbose=0)
    assert f"{acc:.4f}" in out or f"{100 * acc:.2f}" in out, (out, acc)
    # load_model keeps the run file: saved again, the CLI still opens it.
    again = load_model(tmp_path / "digits")
    again.save(tmp_path / "digits2")
    subprocess.run([binary, "evaluate", str(tmp_path / "digits2"), "--data", "mnist",
                    "--data-dir", os.path.join(ROOT, "data", "mnist")], check=True, capture_output=True)


def test_evaluate_and_predict_take_generators_and_load_img_reads_as_training_does():
    from convnet.keras.preprocessing.image import ImageDataGenerator, img_to_array, load_img
    from convnet.keras.utils import load_img as utils_load_img

    photos = os.path.join(ROOT, "data", "cats-vs-dogs")
    c = Sequential([Conv2D(4, 3, input_shape=(32, 32, 3), activation="relu"), MaxPooling2D(4),
                    Flatten(), Dense(1, activation="sigmoid")], seed=5)
    c.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    gen = ImageDataGenerator(rescale=1 / 255)
    folder = gen.flow_from_directory(photos, target_size=(32, 32), class_mode="binary", shuffle=False)
    # Keras's attributes: files sorted by class then name, their classes, the class indices.
    assert folder.class_indices == {"cats": 0, "dogs": 1} and folder.filenames[0] == os.path.join("cats", "cat.0.jpg")
    assert len(folder.filenames) == len(folder.classes) == folder.samples == 80 and folder.classes.sum() == 40
    # The tutorial's single prediction: load_img, img_to_array (0..255), then / 255 by hand.
    img = load_img(os.path.join(photos, folder.filenames[0]), target_size=(32, 32))
    assert img.size == (32, 32) and img.mode == "RGB"
    a = img_to_array(img)
    assert a.shape == (32, 32, 3) and a.dtype == np.float32 and a.max() > 1
    assert utils_load_img(os.path.join(photos, folder.filenames[0])).size == (500, 374)
    assert img_to_array(load_img(os.path.join(photos, folder.filenames[0]), color_mode="grayscale")).shape == (374, 500, 1)
    # predict(flow) follows .filenames and equals predict on the same files read by load_img.
    x = np.stack([img_to_array(load_img(os.path.join(photos, f), target_size=(32, 32))) for f in folder.filenames])
    x /= np.float32(255)
    p = c.predict(folder)
    assert p.shape == (80, 1)
    np.testing.assert_array_equal(p, c.predict(x))
    # evaluate(flow) equals evaluate on those arrays (the folder's own file order differs: the
    # mean is summed in another order).
    loss, acc = c.evaluate(folder)
    ref_loss, ref_acc = c.evaluate(x, folder.classes.astype(np.float32))
    assert acc == ref_acc and abs(loss - ref_loss) < 1e-5
    # A validation subset evaluates its own share of the files.
    split = ImageDataGenerator(rescale=1 / 255, validation_split=0.25)
    val = split.flow_from_directory(photos, target_size=(32, 32), class_mode="binary", subset="validation")
    _, val_acc = c.evaluate(val)
    assert val.samples == 20 and abs(val_acc * 20 - round(val_acc * 20)) < 1e-4
    # flow(x, y): evaluated on the rescaled arrays.
    flow = gen.flow(x * 255, folder.classes.astype(np.float32), shuffle=False)
    assert c.evaluate(flow)[1] == acc
    np.testing.assert_allclose(c.predict(flow), p, rtol=1e-6)
    # The validation subset holds the files fit validates on: right after a fit, evaluate gives
    # its last epoch's figures.
    train = split.flow_from_directory(photos, target_size=(32, 32), class_mode="binary", subset="training")
    h = c.fit(train, validation_data=val, epochs=1, verbose=0)
    val_loss, val_acc = c.evaluate(val)
    assert val_acc == h.history["val_accuracy"][0] and abs(val_loss - h.history["val_loss"][0]) < 1e-5


def test_save_and_load_model_give_the_same_predictions(digits, tmp_path):
    x, _, _ = digits
    m = mnist_nets()[1]
    m.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.json").exists()
    np.testing.assert_array_equal(load_model(tmp_path / "m").predict(x[:9]), m.predict(x[:9]))


def test_set_random_seed_makes_builds_repeatable_and_models_differ():
    set_random_seed(11)
    a = [w.copy() for w in mnist_nets()[0].get_weights()]
    set_random_seed(11)
    b = mnist_nets()
    np.testing.assert_array_equal(a[0], b[0].get_weights()[0])
    assert not np.array_equal(b[0].get_weights()[0], b[1].get_weights()[0])


def test_ctrl_c_mid_fit_keeps_the_model_and_raises_keyboard_interrupt(digits):
    x, y, _ = digits
    m = mnist_nets()[2]
    before = [w.copy() for w in m.get_weights()]
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        m.fit(np.concatenate([x] * 10), np.concatenate([y] * 10), epochs=50, verbose=0)
    timer.cancel()
    # The pass stopped after the batch it was in, as Keras's does (not at the epoch's end):
    # no epoch finished, yet the model holds the batches trained and is usable.
    assert m.engine.epochs_done == 0
    assert any(not np.array_equal(a, b) for a, b in zip(m.get_weights(), before))
    assert m.predict(x[:2]).shape == (2, 10)


def test_sigint_mid_fit_leaves_a_run_that_the_same_fit_resumes(digits, tmp_path):
    """A real SIGINT, sent once the first epoch's checkpoint is on disk: fit raises
    KeyboardInterrupt within the next epochs, and the same call again resumes and ends with
    the weights of an uninterrupted fit."""
    x, y, _ = digits

    def net():
        m = Sequential([Conv2D(8, 3, input_shape=(28, 28, 1), activation="relu"), MaxPooling2D(),
                        Flatten(), Dense(10, activation="softmax")], seed=8)
        m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        return m

    ref = net()
    ref.fit(x, y, epochs=6, batch_size=16, verbose=0)
    backup = cb.BackupAndRestore(tmp_path / "backup")
    latest = tmp_path / "backup" / "checkpoints" / "LATEST"

    def interrupt_after_the_first_checkpoint():
        while not latest.exists():
            time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=interrupt_after_the_first_checkpoint)
    watcher.start()
    with pytest.raises(KeyboardInterrupt):
        net().fit(x, y, epochs=6, batch_size=16, verbose=0, callbacks=[backup])
    watcher.join()
    again = net()
    h = again.fit(x, y, epochs=6, batch_size=16, verbose=0, callbacks=[backup])
    assert 1 <= h.epoch[0] < 6 and h.epoch[-1] == 5
    for a, b in zip(again.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_seed_classifier_trains_on_the_bundled_photos_through_flow_from_directory():
    from convnet.keras.preprocessing.image import ImageDataGenerator

    gen = ImageDataGenerator(rescale=1.0 / 255, shear_range=0.2, zoom_range=0.2, horizontal_flip=True,
                             validation_split=0.25)
    folder = os.path.join(ROOT, "data", "cats-vs-dogs")
    train = gen.flow_from_directory(folder, target_size=(128, 128), batch_size=16, class_mode="binary",
                                    subset="training")
    val = gen.flow_from_directory(folder, target_size=(128, 128), batch_size=16, class_mode="binary",
                                  subset="validation")
    assert train.class_indices == {"cats": 0, "dogs": 1}
    assert train.samples + val.samples == 80
    c = seed_classifier()
    h = c.fit(train, epochs=1, validation_data=val, verbose=0)
    assert len(h.history["val_loss"]) == 1 and np.isfinite(h.history["loss"][0])
    with pytest.raises(ValueError, match="target_size"):
        c.fit(gen.flow_from_directory(folder, target_size=(64, 64), class_mode="binary"), verbose=0)
    with pytest.raises(ValueError, match="class_mode"):
        c.fit(gen.flow_from_directory(folder, target_size=(128, 128)), verbose=0)


def test_each_generator_option_changes_the_images_and_flow_trains(digits):
    from convnet.keras.preprocessing.image import ImageDataGenerator

    x, y, _ = digits
    raw = x[:8] * 255
    plain = next(ImageDataGenerator(rescale=1.0 / 255).flow(raw, shuffle=False))
    np.testing.assert_allclose(plain, x[:8], atol=1e-6)
    for option in (dict(rotation_range=30), dict(width_shift_range=0.2), dict(height_shift_range=0.2),
                   dict(shear_range=30), dict(zoom_range=0.3), dict(horizontal_flip=True),
                   dict(brightness_range=(0.5, 0.9))):
        out = next(ImageDataGenerator(rescale=1.0 / 255, **option).flow(raw, batch_size=8, shuffle=False, seed=1))
        assert out.shape == (8, 28, 28, 1) and out.dtype == np.float32
        assert not np.allclose(out, x[:8], atol=1e-3), option
    flips = next(ImageDataGenerator(horizontal_flip=True).flow(x[:8], batch_size=8, shuffle=False, seed=2))
    assert all(np.array_equal(f, a) or np.array_equal(f, a[:, ::-1]) for f, a in zip(flips, x[:8]))
    # Keras's subsets: the validation subset is the first fraction.
    g = ImageDataGenerator(validation_split=0.25)
    assert len(g.flow(x[:8], y[:8], subset="validation").x) == 2
    np.testing.assert_array_equal(g.flow(x[:8], y[:8], subset="training").x, x[2:8])
    m = mnist_nets()[0]
    h = m.fit(ImageDataGenerator(rotation_range=10, zoom_range=0.1).flow(x[:512], y[:512], batch_size=64),
              epochs=2, validation_data=(x[1500:1700], y[1500:1700]), verbose=0)
    assert len(h.history["val_accuracy"]) == 2 and h.history["val_accuracy"][1] > 0.5


def test_the_notation_and_the_built_in_nets_are_models_too(digits):
    import convnet
    from convnet.keras import applications

    x, y, _ = digits
    m = convnet.build("32C5-P2-64C5-P2-128-D0.4-10", seed=2)
    # 832 + 51,264 + (7*7*64 + 1)*128 + 1,290, as `convnet summary` counts it
    assert m.count_params() == 832 + 51_264 + 401_536 + 1_290
    m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    assert m.fit(x[:256], y[:256], epochs=1, verbose=0).history["loss"][0] > 0
    with pytest.raises(ValueError, match="7Q"):
        convnet.build("32C5-7Q-10")
    r = applications.ResNet20()
    assert r.input_shape == (None, 32, 32, 3) and r.output_shape == (None, 10)
    with pytest.raises(ValueError, match="weights"):
        applications.VGG16(weights="imagenet")


def test_backup_and_restore_resumes_an_interrupted_fit_to_the_weights_of_an_uninterrupted_one(digits, tmp_path):
    x, y, _ = digits
    x, y = x[:600], y[:600]

    def net():
        m = Sequential([Conv2D(4, 3, input_shape=(28, 28, 1), activation="relu"), MaxPooling2D(),
                        Flatten(), Dropout(0.3), Dense(10, activation="softmax")], seed=4)
        m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        return m

    raised = []

    def schedule(epoch, lr):
        # Ctrl-C at the start of epoch 2, once: fit stops after that epoch's first batch and
        # raises; the checkpoints of epochs 0 and 1 are on disk.
        if epoch == 2 and not raised:
            raised.append(epoch)
            raise KeyboardInterrupt
        return lr

    ref = net()
    ref.fit(x, y, epochs=4, batch_size=32, validation_split=0.1, verbose=0,
            callbacks=[cb.LearningRateScheduler(lambda e, lr: lr)])
    m = net()
    backup = cb.BackupAndRestore(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        m.fit(x, y, epochs=4, batch_size=32, validation_split=0.1, verbose=0,
              callbacks=[backup, cb.LearningRateScheduler(schedule)])
    assert (tmp_path / "backup" / "checkpoints" / "LATEST").exists()
    # As after a crash: a new process, a new model object, the same call.
    again = net()
    h = again.fit(x, y, epochs=4, batch_size=32, validation_split=0.1, verbose=0,
                  callbacks=[backup, cb.LearningRateScheduler(schedule)])
    assert h.epoch == [2, 3]
    for a, b in zip(again.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "backup" / "checkpoints").exists()
    # A backup of another architecture is refused, naming the folder.
    keep = cb.BackupAndRestore(tmp_path / "other", delete_checkpoint=False)
    net().fit(x, y, epochs=1, verbose=0, callbacks=[keep])
    other = Sequential([Flatten(input_shape=(28, 28, 1)), Dense(10, activation="softmax")])
    other.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match="other"):
        other.fit(x, y, epochs=2, verbose=0, callbacks=[keep])


def test_the_cats_vs_dogs_example_script_runs():
    import sys

    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "keras_cats_vs_dogs.py"),
                          os.path.join(ROOT, "data", "cats-vs-dogs"), "1"],
                         check=True, capture_output=True, text=True, cwd=ROOT)
    assert "Total params: 617,249" in out.stdout and "'val_accuracy'" in out.stdout


def test_real_keras_builds_the_same_models_with_the_same_summaries():
    """Where Keras is installed (not in CI: TensorFlow is large): both snippets built by Keras
    itself have our layer classes, output shapes and parameter counts, row by row."""
    keras = pytest.importorskip("keras")
    ours = mnist_nets() + [seed_classifier()]
    theirs = mnist_nets(keras.models.Sequential, keras.layers) + [seed_classifier(keras.models.Sequential, keras.layers)]
    for o, t in zip(ours, theirs):
        rows = o.engine.summary_rows()
        assert [r[1] for r in rows] == [type(k).__name__ for k in t.layers]
        assert [tuple(r[2]) for r in rows] == [tuple(k.output.shape[1:]) for k in t.layers]
        assert [r[3] for r in rows] == [k.count_params() for k in t.layers]
        assert o.count_params() == t.count_params()


def summary_text(m):
    out = []
    m.summary(print_fn=out.append)
    return "".join(out)


def functional_nets(layers, Model):
    """A graph with a shortcut and a branch (4 columns in Keras's summary), and a chain (3)."""
    L = layers
    inp = L.Input(shape=(28, 28, 1))
    a = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
    b = L.BatchNormalization()(L.Conv2D(8, 3, padding="same")(a))
    s = L.Activation("relu")(L.Add()([a, b]))
    c = L.Concatenate()([s, L.ZeroPadding2D(0)(a)])
    graph = Model(inp, L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(c)))
    inp = L.Input(shape=(28, 28, 1))
    return [graph, Model(inp, L.Dense(10)(L.Flatten()(L.Conv2D(4, 3)(inp))))]


def test_summary_is_keras_3s_table_with_keras_s_automatic_names():
    clear_session()
    nets = mnist_nets()
    text = summary_text(nets[1])
    # Keras's names count per process: the loop's second model has conv2d_1, dense_2, ...
    assert 'Model: "sequential_1"' in text and "│ conv2d_1 (Conv2D)" in text and "dense_3 (Dense)" in text
    assert text.splitlines()[1].startswith("┏━") and "Param #" in text and "input_layer" not in text
    assert " Total params: 634,410 (2.42 MB)" in text
    clear_session()
    graph, chain = functional_nets(L, Model)
    text = summary_text(graph)
    assert "Connected to" in text and "│ input_layer[0][0] │" in text and "conv2d[0][0]," in text
    assert "Connected to" not in summary_text(chain) and "input_layer_1 (InputLayer)" in summary_text(chain)


def test_real_keras_prints_the_same_summaries_character_for_character():
    """Where Keras is installed: the tutorial's models and two functional ones, built in both
    from a fresh session, print the same text (names, shapes, counts, wrapping, totals)."""
    keras = pytest.importorskip("keras")
    clear_session()
    keras.utils.clear_session()
    ours = mnist_nets() + [seed_classifier()]
    theirs = mnist_nets(keras.models.Sequential, keras.layers) + [seed_classifier(keras.models.Sequential, keras.layers)]
    clear_session()
    keras.utils.clear_session()
    ours += functional_nets(L, Model)
    theirs += functional_nets(keras.layers, keras.Model)
    for o, t in zip(ours, theirs):
        assert summary_text(o) == summary_text(t)


def test_verbose_prints_keras_progress_bar_and_epoch_lines(digits, capsys):
    x, y, _ = digits
    m = Sequential([Flatten(input_shape=(28, 28, 1)), Dense(10, activation="softmax")], seed=2)
    m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    m.fit(x[:640], y[:640], batch_size=64, epochs=2, validation_split=0.25)
    out = capsys.readouterr().out
    plain = re.sub("\x1b\\[[0-9;]*m", "", out)
    # verbose="auto": the bar redrawn in place, the finished one kept with the validation metrics.
    assert plain.startswith("Epoch 1/2\n")
    done = re.findall(r"\r8/8 ━{20} \d+s \d+[mu]?s/step - accuracy: [0-9.]+ - loss: [0-9.]+"
                      r" - val_accuracy: [0-9.]+ - val_loss: [0-9.]+ *\n", plain)
    assert len(done) == 2 and "Epoch 2/2\n" in plain
    m.fit(x[:640], y[:640], batch_size=64, epochs=2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0::2] == ["Epoch 1/2", "Epoch 2/2"]
    for line in lines[1::2]:
        assert re.fullmatch(r"10/10 - \d+s - \d+[mu]?s/step - accuracy: [0-9.]+ - loss: [0-9.]+", line), line
    m.fit(x[:64], y[:64], verbose=0)
    assert capsys.readouterr().out == ""
    # Without metrics=["accuracy"] Keras shows the loss only.
    m.compile(optimizer="adam", loss="categorical_crossentropy")
    m.fit(x[:64], y[:64], verbose=2)
    assert "accuracy" not in capsys.readouterr().out
