#!/usr/bin/python3
"""layers_table.py: the per-layer and training-step tables of docs/benchmarks.md, in markdown,
from bench_layers' JSON (--benchmark_out=FILE --benchmark_out_format=json, run with
--benchmark_repetitions and --benchmark_report_aggregates_only: the medians are read).

Usage: bench/layers_table.py layers.json
Standard library only (the system python has no numpy or matplotlib)."""
import json
import sys


def medians(path):
    with open(path) as f:
        doc = json.load(f)
    out = {}
    for b in doc["benchmarks"]:
        if b.get("aggregate_name", "median") != "median" or b.get("error_occurred"):
            continue
        name = b.get("run_name", b["name"])
        # Google Benchmark appends what the registration asked for: drop it from the key.
        name = "/".join(p for p in name.split("/")
                        if p != "real_time" and not p.startswith("iterations:"))
        out[name] = b
    return doc.get("context", {}), out


def fmt(x):
    return f"{x:,.0f}"


def pool_after(rows, context, key):
    """The forward rows of the layer after key's layer, by engine; {} when it has none."""
    layers = context.get(f"layers_{key[0]}", "").split(",")
    at = layers.index(key[1]) + 1 if key[1] in layers else len(layers)
    return rows.get((key[0], layers[at], "forward"), {}) if at < len(layers) else {}


def fused_forward(rows, context, key, engine):
    """Whether engine's forward of key's layer is that conv fused with the max pool after it,
    as training runs them (docs/codegen.md): the pool then has no forward row of that engine."""
    after = pool_after(rows, context, key)
    return key[2] == "forward" and engine in rows[key] and bool(after) and engine not in after


def roofline(context, runs, rows, best, spec, position):
    """Every phase under the roofline of one thread: its FLOPs over the bytes it must move (the
    arithmetic intensity), what the peak and the triad bandwidths of memory and of L2 allow it,
    and what the specialised code reaches."""
    bw = {level: runs.get(f"bandwidth/{level}/threads:1", {}).get("GB/s")
          for level in ("memory", "l2")}
    if not spec or not bw["memory"] or not bw["l2"]:
        return
    peak = best[1]
    print(f"\n**Roofline**, one thread: peak {peak:.1f} GFLOP/s; triad bandwidth "
          f"{bw['memory']:.1f} GB/s from memory and {bw['l2']:.1f} GB/s from L2, so a phase "
          f"needs {peak / bw['memory']:.1f} FLOP/byte to be compute-bound when its tensors come "
          f"from memory and {peak / bw['l2']:.1f} when they sit in L2. Bytes: every tensor the "
          "phase reads or writes, once, at batch 64. GFLOP/s: the useful FLOPs of "
          f"{spec}.\n")
    print("| model | layer | phase | MFLOP | KiB | FLOP/B | roof (memory) | roof (L2) | GFLOP/s "
          "| of peak | of L2 roof | bound |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    any_fused = False
    for key in sorted(rows, key=lambda k: (k[0], position(k))):
        b = rows[key].get(spec)
        g = rows[key].get("generic")  # its flops are the phase's useful ones, batch 64
        if not b or not g:
            continue
        flops, nbytes = g["flops"], g["bytes"]
        intensity = flops / nbytes
        roof_mem = min(peak, intensity * bw["memory"])
        roof_l2 = min(peak, intensity * bw["l2"])
        achieved = b["img/s"] * flops / 64 / 1e9
        # A fused conv's time is its pool's too: the conv's FLOPs over it understate the rate.
        mark = " *" if fused_forward(rows, context, key, spec) else ""
        any_fused = any_fused or bool(mark)
        bound = ("compute" if roof_mem >= peak else
                 "memory" if roof_l2 < peak else "compute in cache, memory otherwise")
        print(f"| {key[0]} | {key[1]} | {key[2]}{mark} | {flops / 1e6:.2f} | "
              f"{nbytes / 1024:,.0f} | {intensity:.1f} | {roof_mem:.0f} | {roof_l2:.0f} | "
              f"{achieved:.1f} | {100 * achieved / peak:.0f}% | {100 * achieved / roof_l2:.0f}% | "
              f"{bound} |")
    if any_fused:
        print("\n\\* the conv and the max pool after it in one function: its time is both "
              "layers', its GFLOP/s the conv's FLOPs over that time.")


def main():
    context, runs = medians(sys.argv[1])
    peaks = {n: b["GFLOP/s"] for n, b in runs.items() if n.startswith("peak_fma/")}
    # The denominator of every share here: the best FP32 ISA's median peak of this run, per
    # thread count (the binary's own peak_share divides by a figure measured once at start-up,
    # which one burst of load on a shared machine can spoil); bf16 code's, vdpbf16ps's.
    best = {t: max([peaks.get(f"peak_fma/{isa}/threads:{t}", 0) for isa in ("avx512", "avx2")])
            for t in (1, 2)}
    bf16 = {t: peaks.get(f"peak_fma/avx512_bf16/threads:{t}", 0) for t in (1, 2)}
    print("**Peak FP32 FMA, and bf16** (12 independent chains of FMAs, 24 of vdpbf16ps; GFLOP/s, "
          "median of the repetitions; the shares below divide by the better FP32 ISA: "
          f"{best[1]:.1f} on 1 thread, {best[2]:.1f} on 2; bf16 code's by avx512_bf16's)\n")
    print("| ISA | 1 thread | 2 threads |")
    print("| --- | ---: | ---: |")
    for isa in ("avx512", "avx2", "avx512_bf16"):
        one = peaks.get(f"peak_fma/{isa}/threads:1")
        two = peaks.get(f"peak_fma/{isa}/threads:2")
        if one or two:
            print(f"| {isa} | {one or 0:.1f} | {two or 0:.1f} |")

    def share(b, threads, engine):
        """A figure's share of its own peak: bf16 code's of the bf16 peak."""
        peak = bf16[threads] if engine.endswith("bf16") else best[threads]
        return f"{100 * b['GFLOP/s'] / peak:.0f}%" if peak else "-"

    # layer/<model>/<layer>/<phase>/<engine>
    rows = {}
    engines = []
    for n, b in runs.items():
        parts = n.split("/")
        if parts[0] != "layer" or len(parts) < 5:
            continue
        key = tuple(parts[1:4])
        engine = parts[4]
        if engine not in engines:
            engines.append(engine)
        rows.setdefault(key, {})[engine] = b
    # The network's order (bench_layers records it in the context), then forward, backward-data,
    # backward-weights.
    phases = ["forward", "backward_data", "backward_weights"]

    def position(key):
        layers = context.get(f"layers_{key[0]}", "").split(",")
        at = layers.index(key[1]) if key[1] in layers else len(layers)
        return (at, phases.index(key[2]) if key[2] in phases else 9)
    order = ["generic", "onednn"] + sorted(e for e in engines if e.startswith("specialized"))
    order = [e for e in order if e in engines]
    # The variant "auto" runs: the widest ISA measured.
    best_spec = next((e for e in ("specialized-avx512", "specialized-avx2", "specialized-portable")
                      if e in order), None)
    for model in sorted(dict.fromkeys(k[0] for k in rows)):  # as the roofline orders them
        print(f"\n**{model}**, per layer and phase, batch 64, one thread per call: images/s "
              "(share of the 1-thread peak; avx512_bf16's of the bf16 peak)\n")
        head = " | ".join(order)
        extra = f" | {best_spec} / oneDNN" if best_spec and "onednn" in order else ""
        print(f"| layer | phase | {head}{extra} |")
        print("| --- | --- |" + " ---: |" * (len(order) + (1 if extra else 0)))
        # A conv fused with its max pool is marked, and compared with oneDNN's conv and pool
        # forward together.
        any_fused = False
        for key in sorted((k for k in rows if k[0] == model), key=position):
            cells = []
            for e in order:
                b = rows[key].get(e)
                fused = e.startswith("specialized") and fused_forward(rows, context, key, e)
                mark = " *" if fused else ""
                any_fused = any_fused or bool(mark)
                cells.append(f"{fmt(b['img/s'])} ({share(b, 1, e)}){mark}" if b else "-")
            if extra:
                s, o = rows[key].get(best_spec), rows[key].get("onednn")
                if s and o and fused_forward(rows, context, key, best_spec):
                    p = pool_after(rows, context, key).get("onednn")
                    o = {"img/s": 1 / (1 / o["img/s"] + 1 / p["img/s"])} if p else None
                cells.append(f"{s['img/s'] / o['img/s']:.2f}x" if s and o else "-")
            print(f"| {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
        if any_fused:
            print("\n\\* the conv and the max pool after it in one function, as training runs "
                  "them (docs/codegen.md), so that engine's pool has no forward row; the ratio to "
                  "oneDNN is to its conv and pool forward together.")

    roofline(context, runs, rows, best, best_spec, position)

    steps = {n: b for n, b in runs.items() if n.startswith("train_step/")}
    if steps:
        print("\n**Whole training step** (batch 64: cnnc's engines through the C ABI as cnnc "
              "train, oneDNN's network in either activation layout; images/s, share of the peak "
              "of as many threads, and specialized-bf16's of the bf16 peak)\n")
        print("| model | engine | 1 thread | 2 threads |")
        print("| --- | --- | ---: | ---: |")
        # By model, then cnnc's engines before oneDNN's: the random interleaving leaves no order.
        rank = ["generic", "specialized", "specialized-bf16", "onednn-any", "onednn-nhwc"]
        seen = sorted(dict.fromkeys(tuple(n.split("/")[1:3]) for n in steps),
                      key=lambda k: (k[0], rank.index(k[1]) if k[1] in rank else len(rank), k[1]))
        for model, engine in seen:
            cells = []
            for t in (1, 2):
                b = steps.get(f"train_step/{model}/{engine}/threads:{t}")
                own = f", {share(b, t, engine)} of bf16's" if b and engine.endswith("bf16") else ""
                cells.append(f"{fmt(b['img/s'])} ({share(b, t, '')}{own})" if b else "-")
            print(f"| {model} | {engine} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
