"""Python peer of `fer serve` for make bench-serve: Flask + PyTorch serving
the same checkpoint, one forward pass per request (no batching).

Usage: peer.py CHECKPOINT PORT THREADS

The checkpoint is a fertorch safetensors file; its tensors carry
torchvision's names, so they load into torchvision's vgg16_bn features
with fertorch's gap head (AdaptiveAvgPool2d(1), Flatten, Dropout, Linear)
under the same names. The run state in its metadata gives the classes and
the input size. Images are decoded with PIL, converted to RGB, resized
bilinearly and normalised with ImageNet's mean and std, as fertorch's
checkpoint says. POST /v1/predict takes the image as the raw body and
answers the top 3 classes as JSON.
"""
import io
import json
import struct
import sys

import torch
import torchvision
from flask import Flask, jsonify, request
from PIL import Image

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    buf = data[8 + n:]
    meta = header.pop("__metadata__")
    tensors = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        tensors[name] = torch.frombuffer(bytearray(buf[b:e]), dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return json.loads(meta["fertorch.state"]), tensors


class GapVGG(torch.nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.features = torchvision.models.vgg16_bn().features
        self.avgpool = torch.nn.AdaptiveAvgPool2d(1)
        self.classifier = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Linear(512, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def main():
    path, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    state, tensors = load(path)
    classes = state["classes"]
    cfg = state["config"]["Model"]
    if cfg["Arch"] != "vgg16_bn" or cfg["Head"] != "gap":
        sys.exit("peer.py serves vgg16_bn with the gap head only")
    size = cfg["InputSize"]
    model = GapVGG(len(classes))
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        sys.exit("checkpoint does not match: missing %s unexpected %s" % (missing, unexpected))
    model.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    with torch.inference_mode():
        model(torch.zeros(1, 3, size, size))

    app = Flask(__name__)

    @app.post("/v1/predict")
    def predict():
        try:
            img = Image.open(io.BytesIO(request.get_data())).convert("RGB").resize((size, size), Image.BILINEAR)
        except Exception as e:  # noqa: BLE001 - any decoding failure is the client's
            return jsonify(error=str(e)), 400
        x = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(size, size, 3).permute(2, 0, 1).float() / 255
        x = ((x - mean) / std).unsqueeze(0)
        with torch.inference_mode():
            p = torch.softmax(model(x), 1)[0]
        top = torch.topk(p, 3)
        return jsonify(predictions=[{"image": "body", "emotion": classes[top.indices[0]],
                                     "top": [{"class": classes[i], "probability": float(v)} for v, i in zip(top.values, top.indices)]}])

    print("ready", flush=True)
    app.run(host="127.0.0.1", port=port, threaded=True)


if __name__ == "__main__":
    main()
