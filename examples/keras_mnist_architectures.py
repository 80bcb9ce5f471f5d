"""The MNIST architecture loop (how many convolution-pooling pairs?), as written for Keras;
only the imports changed.

    pip install .                                   # from the repository root
    python3 examples/keras_mnist_architectures.py [EPOCHS]

Trains the three nets on the bundled MNIST (the last 10 % of the training images held out)
and prints each one's best validation accuracy, as the Kaggle notebook does.
"""

import sys

from convnet.keras.datasets import mnist
from convnet.keras.layers import Conv2D, Dense, Flatten, MaxPool2D
from convnet.keras.models import Sequential
from convnet.keras.utils import to_categorical

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
(x_train, y_train), _ = mnist.load_data()
X_train = x_train.reshape(-1, 28, 28, 1).astype("float32") / 255
Y_train = to_categorical(y_train, 10)

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

names = ["(C-P)x1", "(C-P)x2", "(C-P)x3"]
for j in range(nets):
    history = model[j].fit(X_train, Y_train, batch_size=80, epochs=epochs, validation_split=0.1, verbose=0)
    print(
        f"CNN {names[j]}: Epochs={epochs:d}, Train accuracy={max(history.history['accuracy']):.5f}, "
        f"Validation accuracy={max(history.history['val_accuracy']):.5f}"
    )
