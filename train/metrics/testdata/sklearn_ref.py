"""Reference metrics from scikit-learn for the parity test.

Reads a JSON list of cases from the file named by the first argument, each {"n": classes, "y_true": [...],
"y_pred": [...], "scores": [[...], ...], "ks": [...]}, and writes a JSON list
of results on stdout.
"""
import json
import sys

import numpy as np
from sklearn import metrics

out = []
for case in json.load(open(sys.argv[1])):
    n = case["n"]
    yt = np.array(case["y_true"])
    yp = np.array(case["y_pred"])
    labels = list(range(n))
    p, r, f, s = metrics.precision_recall_fscore_support(
        yt, yp, labels=labels, zero_division=0)
    res = {
        "accuracy": metrics.accuracy_score(yt, yp),
        "balanced_accuracy": metrics.balanced_accuracy_score(yt, yp),
        "precision": p.tolist(),
        "recall": r.tolist(),
        "f1": f.tolist(),
        "support": s.tolist(),
        "confusion": metrics.confusion_matrix(yt, yp, labels=labels).tolist(),
    }
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = metrics.precision_recall_fscore_support(
            yt, yp, average=avg, zero_division=0)
        res[avg] = [ap, ar, af]
    scores = np.array(case["scores"])
    res["top_k"] = [
        metrics.top_k_accuracy_score(yt, scores, k=k, labels=labels)
        for k in case["ks"]
    ]
    out.append(res)
json.dump(out, sys.stdout)
