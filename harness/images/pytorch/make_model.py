#!/usr/bin/env python3
"""Writes a small deterministic PyTorch model for sagedock/pytorch, run inside that image
(its torch writes the file the image will load):

    docker run --rm -v "$DIR:/out" sagedock/pytorch:latest \
        python3 /usr/local/bin/sagedock-pytorch-make-model /out [--code]

OUT/model.pt: TorchScript of nn.Linear(3, 1) with weight [1, 2, 3] and bias 0.5, so a
row [a, b, c] predicts a + 2b + 3c + 0.5: [[1, 1, 1], [0, 0, 0]] -> [[6.5], [0.5]]. This
is what the toolkit's default model_fn (torch.jit.load of model.pt) serves.

With --code, also OUT/code/inference.py: model_fn, input_fn, predict_fn and output_fn of
its own, for the SAGEMAKER_PROGRAM=inference.py path. Its input_fn takes JSON
{"inputs": [[a, b, c], ...]} (or a bare list of rows), its output_fn answers
{"predictions": [6.5, 0.5], "handler": "inference.py"} as application/json whatever the
Accept, so an answer shows which path served it.

The bytes are the same on every run (the script re-executes itself with PYTHONHASHSEED=0).
Files are owned by OUT's owner (the container runs as root). Nothing is downloaded.
"""

import argparse
import os
import sys

# TorchScript writes a module's constants in set order, which string hashing randomises:
# with a fixed hash seed the same model gives the same bytes on every run.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, "PYTHONHASHSEED": "0"})

import torch  # noqa: E402  (after the re-exec: importing torch takes a second)

INFERENCE_PY = '''\
"""Custom handlers for sagedock/pytorch's tests (written by make_model.py --code)."""
import json
import os

import torch


def model_fn(model_dir):
    return torch.jit.load(os.path.join(model_dir, "model.pt"), map_location="cpu")


def input_fn(body, content_type):
    if content_type != "application/json":
        raise ValueError("inference.py takes application/json, not " + str(content_type))
    data = json.loads(body)
    if isinstance(data, dict):
        data = data["inputs"]
    return torch.tensor(data, dtype=torch.float32)


def predict_fn(data, model):
    with torch.no_grad():
        return model(data)


def output_fn(prediction, accept):
    body = {"predictions": prediction.reshape(-1).tolist(), "handler": "inference.py"}
    return json.dumps(body), "application/json"
'''


def linear_model():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0, 3.0]]))
        model.bias.copy_(torch.tensor([0.5]))
    return model.eval()


def chown_like(path, out):
    st = os.stat(out)
    os.chown(path, st.st_uid, st.st_gid)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="directory to write model.pt (and code/) into")
    parser.add_argument("--code", action="store_true", help="also write code/inference.py")
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    model_path = os.path.join(args.out, "model.pt")
    scripted = torch.jit.script(linear_model())
    check = scripted(torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])).tolist()
    assert check == [[6.5], [0.5]], check
    torch.jit.save(scripted, model_path)
    chown_like(model_path, args.out)
    written = [model_path]

    if args.code:
        code_dir = os.path.join(args.out, "code")
        os.makedirs(code_dir, exist_ok=True)
        chown_like(code_dir, args.out)
        script = os.path.join(code_dir, "inference.py")
        with open(script, "w") as f:
            f.write(INFERENCE_PY)
        chown_like(script, args.out)
        written.append(script)

    for path in written:
        print(path)


if __name__ == "__main__":
    main()
