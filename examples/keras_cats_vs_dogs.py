"""The tutorial's cats-vs-dogs classifier, as written for Keras; only the imports changed.

    pip install .                                   # from the repository root
    python3 examples/keras_cats_vs_dogs.py [FOLDER] [EPOCHS]

FOLDER holds one sub-folder per class (default: the 80 bundled photos in data/cats-vs-dogs).
"""

import sys

from convnet.keras.layers import Activation, BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from convnet.keras.models import Sequential
from convnet.keras.preprocessing.image import ImageDataGenerator

folder = sys.argv[1] if len(sys.argv) > 1 else "data/cats-vs-dogs"
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 3

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
classifier.summary()

datagen = ImageDataGenerator(rescale=1.0 / 255, shear_range=0.2, zoom_range=0.2, horizontal_flip=True,
                             validation_split=0.2)
train = datagen.flow_from_directory(folder, target_size=input_size, batch_size=32, class_mode="binary",
                                    subset="training")
validation = datagen.flow_from_directory(folder, target_size=input_size, batch_size=32, class_mode="binary",
                                         subset="validation")
history = classifier.fit(train, epochs=epochs, validation_data=validation)
print({k: [round(v, 4) for v in vs] for k, vs in history.history.items()})
