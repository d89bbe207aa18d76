"""keras-io's MNIST convnet as the plain PyTorch loop a user would write instead of kexp.

Run by bench/run.py with bench/.venv-torch/bin/python (torch is not a kexp dependency):
    torch_convnet.py DATA.npz EPOCHS BATCH_SIZE SEED
DATA.npz holds x_train/y_train/x_test/y_test as uint8 images and int labels (the same arrays kexp
trains on). Prints one JSON line: per-epoch seconds (training plus one pass over the test set, as
kexp's epochs include validation), thread count, versions and the last epoch's metrics.
"""

import json
import sys
import time

import numpy as np
import torch
from torch import nn


def convnet() -> nn.Module:
    """conv32-maxpool-conv64-maxpool-dropout-dense10, as
    kexp.network.models.build_model("convnet")."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(64 * 5 * 5, 10))


def main(argv: list[str]) -> None:
    data_path, epochs, batch_size, seed = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    torch.manual_seed(seed)
    with np.load(data_path, allow_pickle=False) as archive:
        x_train = torch.from_numpy(archive["x_train"].astype(np.float32) / 255.0).unsqueeze(1)
        y_train = torch.from_numpy(archive["y_train"].astype(np.int64))
        x_test = torch.from_numpy(archive["x_test"].astype(np.float32) / 255.0).unsqueeze(1)
        y_test = torch.from_numpy(archive["y_test"].astype(np.int64))
    model = convnet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_function = nn.CrossEntropyLoss()  # on logits: softmax + log fused
    generator = torch.Generator().manual_seed(seed)
    epoch_seconds, loss, accuracy = [], float("nan"), float("nan")
    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        correct = 0
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            logits = model(x_train[batch])
            batch_loss = loss_function(logits, y_train[batch])
            batch_loss.backward()
            optimizer.step()
            correct += int((logits.argmax(1) == y_train[batch]).sum())
        loss, accuracy = float(batch_loss), correct / len(order)
        model.eval()
        with torch.no_grad():
            val_accuracy = sum(int((model(x_test[i:i + batch_size]).argmax(1)
                                    == y_test[i:i + batch_size]).sum())
                               for i in range(0, len(x_test), batch_size)) / len(x_test)
        epoch_seconds.append(time.perf_counter() - started)
    print(json.dumps({"epoch_seconds": epoch_seconds, "threads": torch.get_num_threads(),
                      "interop_threads": torch.get_num_interop_threads(),
                      "torch": torch.__version__, "train_samples": len(x_train),
                      "loss": loss, "accuracy": accuracy, "val_accuracy": val_accuracy}))


if __name__ == "__main__":
    main(sys.argv[1:])
