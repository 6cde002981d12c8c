"""Reference for the decoding and resizing tests: what Keras' load_img does
(PIL open, convert("RGB"), NEAREST resize unless the size already matches).

usage: pil_ref.py DIR
DIR/cases.json lists {"input", "h", "w", "out"}; each output is the raw
RGB bytes (h*w*3).
"""
import json
import os
import sys

from PIL import Image


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "cases.json")) as f:
        cases = json.load(f)
    for c in cases:
        img = Image.open(os.path.join(d, c["input"]))
        if img.mode != "RGB":
            img = img.convert("RGB")
        if img.size != (c["w"], c["h"]):
            img = img.resize((c["w"], c["h"]), Image.NEAREST)
        with open(os.path.join(d, c["out"]), "wb") as f:
            f.write(img.tobytes())
    print(len(cases))


if __name__ == "__main__":
    main()
