#!/usr/bin/env python3
"""Writes summary.json for scripts/gpu-check.sh and prints a short table.

    gpu_check_summary.py WORKDIR SUMMARY_JSON

WORKDIR holds what the script collected: steps.tsv (one line per step:
name, status, exit code, seconds, message), the JSON written by
`fer benchmark --json` and by pytorch_train_bench.py, and the nvidia-smi
samples (timestamp, utilization.gpu, memory.used) taken during each
training run. The rest comes from GC_* environment variables. Only the
standard library is used, so any Python 3 can run it.
"""

import csv
import datetime
import json
import os
import sys

SETTINGS = [
    ("fp32", "fp32", False),
    ("bf16", "bf16", False),
    ("bf16_channels_last", "bf16", True),
]
PARITY = [("fp32", False), ("fp32_channels_last", True)]
IMPLS = ["fertorch", "pytorch"]


def env(name, default=None):
    v = os.environ.get("GC_" + name, "")
    return v if v != "" else default


def env_num(name, kind=int):
    v = env(name)
    try:
        return kind(v) if v is not None else None
    except ValueError:
        return None


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_steps(work):
    steps = []
    try:
        with open(os.path.join(work, "steps.tsv")) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 5:
                    continue
                name, status, rc, secs, msg = parts[:5]
                step = {"name": name, "status": status}
                step["rc"] = int(rc) if rc.lstrip("-").isdigit() else None
                try:
                    step["seconds"] = float(secs)
                except ValueError:
                    step["seconds"] = None
                if msg:
                    step["message"] = msg
                steps.append(step)
    except OSError:
        pass
    return steps


def parse_samples(path):
    """nvidia-smi rows 'YYYY/MM/DD HH:MM:SS.mmm, util, mem' -> [(t, util, mem)]."""
    rows = []
    try:
        with open(path) as f:
            for rec in csv.reader(f):
                if len(rec) < 3:
                    continue
                try:
                    t = datetime.datetime.strptime(rec[0].strip(), "%Y/%m/%d %H:%M:%S.%f").timestamp()
                except ValueError:
                    t = None
                try:
                    rows.append((t, float(rec[1]), float(rec[2])))
                except ValueError:
                    continue
    except OSError:
        return None
    return rows


def utilisation(samples_path, start, end):
    """Mean/max GPU utilisation over the samples inside [start, end] (the
    timed steps); all samples of the run when none fall inside."""
    rows = parse_samples(samples_path)
    if rows is None:
        return None
    window = "timed steps"
    picked = []
    if start is not None and end is not None:
        picked = [r for r in rows if r[0] is not None and start - 0.05 <= r[0] <= end + 0.25]
    if not picked:
        picked, window = rows, "whole run (no sample inside the timed steps)"
    if not picked:
        return {"samples": 0, "window": "none", "util_mean_pct": None, "util_max_pct": None, "mem_used_max_mib": None}
    utils = [r[1] for r in picked]
    return {
        "samples": len(picked),
        "samples_whole_run": len(rows),
        "window": window,
        "util_mean_pct": round(sum(utils) / len(utils), 1),
        "util_max_pct": max(utils),
        "mem_used_max_mib": max(r[2] for r in picked),
    }


def step_info(steps, name):
    for s in steps:
        if s["name"] == name:
            return s
    return {"name": name, "status": "not run"}


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: gpu_check_summary.py WORKDIR SUMMARY_JSON")
    work, out = argv
    steps = read_steps(work)
    mode = env("MODE", "unknown")
    dry = mode != "gpu"

    summary = {
        "tool": "scripts/gpu-check.sh",
        "mode": mode,
        "dry_run": dry,
    }
    if dry:
        summary["note"] = ("CPU dry run of the script with tiny settings: it exercises every step, "
                           "but its numbers are not GPU measurements")
        summary["dry_run_reason"] = env("DRY_REASON")
    summary["date"] = env("DATE")
    start = env_num("START", float)
    now = datetime.datetime.now().timestamp()
    summary["elapsed_seconds"] = round(now - start, 1) if start else None
    summary["budget_seconds"] = env_num("BUDGET")
    summary["host"] = {
        "hostname": env("HOSTNAME"),
        "os": env("OS"),
        "kernel": env("KERNEL"),
        "cpu": env("CPU"),
        "cpus": env_num("CPUS"),
        "glibc": env("GLIBC"),
        "gxx": env("GXX"),
        "nvcc": env("NVCC"),
    }
    gpu = None
    if env("GPU_QUERY"):
        f = [x.strip() for x in env("GPU_QUERY").split(",")]
        gpu = {"id": env("GPU_ID"), "name": f[0] if f else None}
        if len(f) > 1:
            gpu["driver"] = f[1]
        if len(f) > 2:
            try:
                gpu["memory_total_mib"] = float(f[2])
            except ValueError:
                gpu["memory_total_mib"] = f[2]
        if len(f) > 3:
            gpu["compute_capability"] = f[3]
        gpu["cuda_driver_api"] = env("NVSMI_CUDA")
    summary["gpu"] = gpu
    probe = None
    if env("PY_PROBE"):
        try:
            probe = json.loads(env("PY_PROBE"))
        except ValueError:
            probe = None
    if probe is not None:
        probe["path"] = env("PYTHON")
    summary["python"] = probe
    summary["libtorch"] = {"dir": env("LIBTORCH"), "lib": env("TORCH_LIB"), "shim_build": env("BUILD_MODE")}
    summary["fer"] = {"binary": env("FER"), "version": env("FER_VERSION")}
    summary["settings"] = {
        "device": env("DEVICE"),
        "input_size": env_num("SIZE"),
        "batch_size": env_num("BATCH"),
        "steps": env_num("STEPS"),
        "warmup": env_num("WARMUP"),
        "parity_input_size": env_num("PARITY_SIZE"),
    }

    parity = {}
    for key, cl in PARITY:
        name = "parity-" + key.replace("_", "-")
        st = step_info(steps, name)
        entry = {"channels_last": cl, "status": st["status"]}
        data = read_json(os.path.join(work, name + ".json"))
        if st["status"] == "ok" and data is not None:
            entry["max_abs_diff"] = data.get("max_abs_diff")
            entry["compared"] = "cpu vs " + str(data.get("device"))
        elif st.get("message"):
            entry["error"] = st["message"]
        parity[key] = entry
    summary["parity"] = parity

    training = {}
    for key, prec, cl in SETTINGS:
        entry = {"precision": prec, "channels_last": cl}
        rates = {}
        for impl in IMPLS:
            name = "train-%s-%s" % (impl, key.replace("_", "-"))
            st = step_info(steps, name)
            r = {"status": st["status"]}
            data = read_json(os.path.join(work, name + ".json"))
            if st["status"] == "ok" and data is not None:
                for k in ("images_per_sec", "seconds", "steps", "final_loss", "torch_version"):
                    r[k] = data.get(k)
                rates[impl] = data.get("images_per_sec")
                if impl == "pytorch":
                    t0, t1 = data.get("timed_start_unix"), data.get("timed_end_unix")
                    r["vgg16_source"] = data.get("vgg16_source")
                else:
                    # fer writes its JSON right after the timed steps end.
                    try:
                        t1 = os.path.getmtime(os.path.join(work, name + ".json"))
                        t0 = t1 - float(data.get("seconds") or 0)
                    except (OSError, TypeError, ValueError):
                        t0 = t1 = None
                if not dry:
                    r["gpu_util"] = utilisation(os.path.join(work, name + ".util.csv"), t0, t1)
            elif st.get("message"):
                r["error"] = st["message"]
            entry[impl] = r
        if rates.get("fertorch") and rates.get("pytorch"):
            entry["ratio_fertorch_over_pytorch"] = round(rates["fertorch"] / rates["pytorch"], 3)
        else:
            entry["ratio_fertorch_over_pytorch"] = None
        training[key] = entry
    summary["training"] = training

    summary["steps"] = steps
    failed = [s["name"] for s in steps if s["status"] not in ("ok", "skipped-by-option")]
    expected = ["build-shim", "fer-version"] + ["parity-" + k.replace("_", "-") for k, _ in PARITY] + [
        "train-%s-%s" % (impl, k.replace("_", "-")) for k, _, _ in SETTINGS for impl in IMPLS]
    recorded = {s["name"] for s in steps}
    failed += [name + " (not run)" for name in expected if name not in recorded]
    summary["failures"] = failed
    summary["ok"] = not failed and bool(steps)
    if env("ABORTED"):
        summary["ok"] = False
        summary["aborted"] = env("ABORTED")

    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, out)

    # A short table for people.
    print()
    title = "CPU DRY RUN (not a GPU measurement)" if dry else "GPU: %s" % (gpu or {}).get("name")
    print("gpu-check summary: %s" % title)
    for key, _ in PARITY:
        p = parity[key]
        print("  parity %-22s %s" % (key, p.get("max_abs_diff", p["status"])))
    print("  %-20s %14s %14s %7s %16s" % ("training", "fertorch img/s", "pytorch img/s", "ratio", "util% fer/pt"))
    for key, _, _ in SETTINGS:
        t = training[key]

        def rate(impl):
            v = t[impl].get("images_per_sec")
            return "%.1f" % v if isinstance(v, (int, float)) else t[impl]["status"]

        def util(impl):
            u = t[impl].get("gpu_util") or {}
            v = u.get("util_mean_pct")
            return "%.0f" % v if isinstance(v, (int, float)) else "-"

        ratio = t["ratio_fertorch_over_pytorch"]
        print("  %-20s %14s %14s %7s %16s" % (key, rate("fertorch"), rate("pytorch"),
                                             "%.3f" % ratio if ratio else "-", util("fertorch") + "/" + util("pytorch")))
    print("  steps failed: %s" % (", ".join(failed) if failed else "none"))
    print("  summary: %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
