#!/usr/bin/python3
"""pytorch_mnist.py: the PyTorch peer of `cnnc bench`: the same network, batch, threads and
optimizer as a .cnn file, for throughput and time-to-accuracy comparisons (docs/benchmarks.md).

cnnc runs this script; there is only one .cnn parser (cnnc's). cnnc hands over the checked layer
table as JSON (the rows of runtime/cnnc_abi.h), the initial parameters in the ABI's layout, and
for throughput a batch of images and labels, so that the first step and the forward pass can be
compared with cnnc's engines before anything is timed.

Modes:
  serve             line protocol on stdin/stdout, one JSON reply per command, so that cnnc can
                    interleave this engine with its own (the python process stays alive):
                      config <file.json>   build the network (reply: torch version, params, and
                                           the setting it runs under: threads, omp_wait_policy,
                                           blas)
                      threads <n>          torch.set_num_threads(n) (reply: threads)
                      format <f>           nchw or channels_last: the network's and the batch's
                                           memory format from now on
                      load <dir>           params.f32, images.f32 [n][H][W][C], labels.i32
                      check <dir>          one step must be finite; forward -> dir/outputs.f32
                      train <sec> <warm>   training images/s on the loaded batch
                      infer <sec> <warm>   inference images/s
                      quit
  accuracy          train on MNIST (IDX files) until the test accuracy reaches a target;
                    prints one JSON object per evaluation and a final one with "done" (which,
                    like config's reply, names threads, omp_wait_policy and blas).

Every reply is one line of JSON; errors are {"error": "..."}. NCHW inside (PyTorch's native
layout): parameters are permuted from the ABI's channels-last layout once when loaded.

PyTorch at its best (docs/design.md, docs/benchmarks.md), and what this script once got wrong: on a 2-core Zen 5 it
trained lenet5 at a third of a plain PyTorch loop's rate (6,337 against about 20,500 images/s).
Two causes, found with torch.profiler on lenet5's step (1 thread, 2026-12-03):
  - the images were channels-last in disguise. A permute of [n][H][W][1] to [n][1][H][W] passes
    torch's is_contiguous() check (a dimension of size 1 has no stride to get wrong), so
    .contiguous() kept the strides (784, 1, 28, 1); those are also channels-last strides, so
    the first convolution chose channels-last for its output and every conv, ReLU and pooling
    after it ran the slower channels-last kernels (ReLU and its backward 14% of the step instead
    of 3%; 2x the step at 1 thread). The batch is now built NCHW: to_nchw() below.
  - torch's dense layers (addmm, mm) call whatever libblas.so.3 the process loads. Debian's
    python3-torch only recommends OpenBLAS; without it, the netlib reference BLAS runs the
    GEMMs at about 3 GFLOP/s against OpenBLAS's 70 on one core, and keras_mnist's 9216 x 128
    layer alone caps training near 450 images/s. The script cannot change its BLAS once
    started, so it says which one it got ("blas" in config's reply) and cnnc prints it.
    `scripts/setup --peers` installs libopenblas0-openmp for that reason.
The rest is what a user's plain loop does: zero_grad(set_to_none=True), no .item() or float()
of the loss per step (the divergence check reads the loss once per timed window), and no copy of
the batch per step. The thread count, OMP_WAIT_POLICY and the memory format are cnnc's to
search: OMP_WAIT_POLICY is read once, when OpenMP starts, so each policy needs its own process;
the thread count and the format can be changed at run time (`threads`, `format`). See
bench/pytorch_peer.cpp for the search. Channels-last for the network and the batch together
(`format channels_last`) is not the disguised case above: on 2026-12-07 it trained keras_mnist
1.1x as fast as NCHW on 2 threads. With "precision": "bf16" in the config the forward pass runs
under torch.autocast's bfloat16 (PyTorch's own mixed precision: convs and linears in bf16, the
loss and the optimizer in fp32), as cnnc's `precision bf16` does; on the same day it trained
keras_mnist 1.4x as fast as fp32 and 1.8x with channels-last.
"""
import json
import math
import os
import struct
import sys
import time

# The ABI's enums (runtime/cnnc_abi.h).
CONV, MAXPOOL, AVGPOOL, FLATTEN, DENSE, DROPOUT, ACTIVATION = 1, 2, 3, 4, 5, 6, 7
LINEAR, RELU, SIGMOID, TANH, SOFTMAX = 0, 1, 2, 3, 4
CROSS_ENTROPY, MSE = 0, 1
SGD, ADAM = 0, 1


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # cnnc says so in one line and goes on without this engine
    reply({"error": f"PyTorch is not installed for {sys.executable} ({e}); "
                    "scripts/setup --peers installs python3-torch"})
    sys.exit(0)


def activation_module(act):
    return {RELU: nn.ReLU(), SIGMOID: nn.Sigmoid(), TANH: nn.Tanh()}.get(act)


class Net(nn.Module):
    """The layer table as torch modules. The final softmax is left to the loss (cross-entropy on
    logits) in training and applied in inference, as cnnc's engines fuse it."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.layers = cfg["layers"]
        mods = []
        self.param_map = []  # (module, layer row) for conv and dense, to load ABI parameters
        spatial = True  # the tensor is still [n][C][H][W]: a dense layer flattens it first
        flat_from = None  # the [H, W, C] a flat tensor came from: the columns' order
        for i, l in enumerate(self.layers):
            kind, act = l["kind"], l["activation"]
            last = i + 1 == len(self.layers)
            if kind == CONV:
                pt, pl, pb, pr = l["pad"]
                conv = nn.Conv2d(l["in"][2], l["out"][2], tuple(l["kernel"]), tuple(l["stride"]),
                                 padding=(pt, pl) if (pt, pl) == (pb, pr) else 0)
                if (pt, pl) != (pb, pr):
                    mods.append(nn.ZeroPad2d((pl, pr, pt, pb)))
                mods.append(conv)
                self.param_map.append((conv, l))
            elif kind in (MAXPOOL, AVGPOOL):
                cls = nn.MaxPool2d if kind == MAXPOOL else nn.AvgPool2d
                mods.append(cls(tuple(l["kernel"]), tuple(l["stride"])))
            elif kind == FLATTEN:
                mods.append(nn.Flatten())
                spatial, flat_from = False, l["in"]
            elif kind == DENSE:
                if spatial:
                    mods.append(nn.Flatten())
                    spatial, flat_from = False, l["in"]
                lin = nn.Linear(l["in"][0] * l["in"][1] * l["in"][2], l["out"][2])
                mods.append(lin)
                self.param_map.append((lin, dict(l, flat_from=flat_from)))
                flat_from = [1, 1, l["out"][2]]
            elif kind == DROPOUT:
                mods.append(nn.Dropout(l["rate"]))
            elif kind == ACTIVATION:
                pass
            else:
                raise ValueError(f"layer {l['name']}: unknown kind {kind}")
            if kind == CONV or kind in (MAXPOOL, AVGPOOL):
                spatial = True
            if act == SOFTMAX:
                if not last:
                    raise ValueError(f"layer {l['name']}: softmax before the last layer")
            elif act != LINEAR:
                mods.append(activation_module(act))
        self.body = nn.Sequential(*mods)
        self.softmax = self.layers[-1]["activation"] == SOFTMAX

    def forward(self, x):
        return self.body(x)

    def load_abi(self, flat):
        """flat: the ABI's parameter vector (a 1-D float tensor)."""
        with torch.no_grad():
            for mod, l in self.param_map:
                w = flat[l["weight_offset"]:l["weight_offset"] + l["weight_count"]]
                b = flat[l["bias_offset"]:l["bias_offset"] + l["bias_count"]]
                k = l["out"][2]
                if l["kind"] == CONV:  # [K][R][S][C] -> [K][C][R][S]
                    r, s = l["kernel"]
                    w = w.view(k, r, s, l["in"][2]).permute(0, 3, 1, 2)
                else:  # columns in [H][W][C] order -> torch's flatten order [C][H][W]
                    h, wd, c = l["flat_from"]
                    w = w.view(k, h, wd, c).permute(0, 3, 1, 2).reshape(k, c * h * wd)
                mod.weight.copy_(w)
                if l["bias_count"]:
                    mod.bias.copy_(b)


def make_optimizer(net, o):
    if o["kind"] == ADAM:
        return torch.optim.Adam(net.parameters(), lr=o["lr"], betas=(o["beta1"], o["beta2"]),
                                eps=o["eps"], weight_decay=o["weight_decay"])
    return torch.optim.SGD(net.parameters(), lr=o["lr"], momentum=o["momentum"],
                           weight_decay=o["weight_decay"])


def loss_of(net, out, labels):
    if net.cfg["loss"] == CROSS_ENTROPY:
        return F.cross_entropy(out, labels)  # on logits: the softmax is fused into the loss
    y = F.softmax(out, dim=1) if net.softmax else out
    return F.mse_loss(y, F.one_hot(labels, y.shape[1]).float())


def read_floats(path):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    return torch.frombuffer(data, dtype=torch.float32)


def to_nchw(images, cfg):
    """[n][H][W][C] -> a real NCHW tensor. Not .contiguous(): with C = 1 the permuted view already
    passes that check, keeps channels-last strides, and every layer after it runs channels-last."""
    h, w, c = cfg["input"]
    return images.view(-1, h, w, c).permute(0, 3, 1, 2).clone(memory_format=torch.contiguous_format)


def blas_library():
    """The BLAS the process loaded (torch's dense layers run on it), from /proc/self/maps: the
    netlib reference BLAS is 20x slower than OpenBLAS here and must show in the results."""
    torch.mm(torch.ones(2, 2), torch.ones(2, 2))  # make sure it is loaded
    try:
        with open("/proc/self/maps") as f:
            names = {line.split()[-1] for line in f if "blas" in line.rsplit("/", 1)[-1]}
    except OSError:
        return "unknown"
    for name in sorted(names):
        base = os.path.basename(name)
        if "openblas" in base or "mkl" in base or "blis" in base:
            return base
    return "reference (netlib " + os.path.basename(sorted(names)[0]) + ")" if names else "none"


def setting():
    """What this process runs under, for cnnc to report with the best rate."""
    return {"threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default").lower(),
            "blas": blas_library()}


MEMORY_FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def format_named(name):
    if name not in MEMORY_FORMATS:
        raise ValueError(f"unknown memory format '{name}' (nchw or channels_last)")
    return MEMORY_FORMATS[name]


def autocast(cfg):
    """The forward pass's precision: fp32, or PyTorch's bf16 mixed precision on the CPU."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.get("precision") == "bf16")


class Server:
    def __init__(self):
        self.net = None

    def config(self, path):
        with open(path) as f:
            self.cfg = json.load(f)
        torch.manual_seed(self.cfg.get("seed", 1))
        torch.set_num_threads(self.cfg["threads"])
        self.net = Net(self.cfg)
        self.format = torch.contiguous_format
        return dict({"ok": True, "torch": torch.__version__,
                     "params": sum(p.numel() for p in self.net.parameters())}, **setting())

    def threads(self, n):
        # OpenMP sizes its team at the next parallel region. In interleaved windows (lenet5, load
        # 8-10) a process started at 1 thread and switched to 2 ran no slower than one started at
        # 2, but that noise hides 30%: cnnc starts one process per setting all the same.
        torch.set_num_threads(n)
        return {"ok": True, "threads": torch.get_num_threads()}

    def set_format(self, name):
        self.format = format_named(name)
        self.net = self.net.to(memory_format=self.format)
        if hasattr(self, "images"):
            self.images = self.images.contiguous(memory_format=self.format)
        return {"ok": True, "memory_format": name}

    def load(self, d):
        self.params = read_floats(os.path.join(d, "params.f32"))
        self.images = to_nchw(read_floats(os.path.join(d, "images.f32")), self.cfg).contiguous(
            memory_format=self.format)
        with open(os.path.join(d, "labels.i32"), "rb") as f:
            self.labels = torch.frombuffer(bytearray(f.read()), dtype=torch.int32).long()
        return {"ok": True, "n": int(self.labels.numel())}

    def reset(self):
        self.net.load_abi(self.params)
        self.opt = make_optimizer(self.net, self.cfg["optimizer"])

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        with autocast(self.cfg):
            out = self.net(self.images)
        loss = loss_of(self.net, out.float(), self.labels)
        loss.backward()
        self.opt.step()
        return loss

    def predict(self):
        """The inference `check` compares and `infer` times: softmax of fp32 logits (CPU autocast
        would leave bf16 logits to a bf16 softmax)."""
        with torch.no_grad():
            with autocast(self.cfg):
                out = self.net(self.images).float()
            return F.softmax(out, dim=1) if self.net.softmax else out

    def check(self, d):
        self.reset()
        self.net.train()
        loss = float(self.step())
        self.reset()
        self.net.eval()
        out = self.predict()
        with open(os.path.join(d, "outputs.f32"), "wb") as f:
            values = out.contiguous().view(-1).tolist()  # no numpy needed
            f.write(struct.pack(f"<{len(values)}f", *values))
        return {"ok": True, "loss": loss, "finite": math.isfinite(loss)}

    def rate(self, seconds, warmup, body):
        def run(limit):
            calls, t0 = 0, time.perf_counter()
            while True:
                body()
                calls += 1
                elapsed = time.perf_counter() - t0
                if calls >= 3 and elapsed >= limit:
                    return calls / elapsed
        run(warmup)
        return run(seconds) * self.labels.numel()

    def train(self, seconds, warmup):
        self.reset()
        self.net.train()
        last = [None]

        def body():  # no float(loss) per step: a plain loop does not read it back every step
            last[0] = self.step()
        ips = self.rate(seconds, warmup, body)
        # A NaN or inf, once in the parameters, stays there: the last loss says if any step blew up.
        return {"images_per_second": ips, "diverged": not math.isfinite(float(last[0].detach()))}

    def infer(self, seconds, warmup):
        self.net.eval()

        return {"images_per_second": self.rate(seconds, warmup, self.predict)}


def serve():
    s = Server()
    reply({"ok": True, "torch": torch.__version__})
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            cmd, args = words[0], words[1:]
            if cmd == "quit":
                reply({"ok": True})
                return
            if cmd == "config":
                reply(s.config(args[0]))
            elif cmd == "threads":
                reply(s.threads(int(args[0])))
            elif cmd == "format":
                reply(s.set_format(args[0]))
            elif cmd == "load":
                reply(s.load(args[0]))
            elif cmd == "check":
                reply(s.check(args[0]))
            elif cmd == "train":
                reply(s.train(float(args[0]), float(args[1])))
            elif cmd == "infer":
                reply(s.infer(float(args[0]), float(args[1])))
            else:
                reply({"error": f"unknown command '{cmd}'"})
        except Exception as e:  # noqa: BLE001 - every failure goes back to cnnc as one line
            reply({"error": f"{type(e).__name__}: {e}"})


# ---- time to accuracy ----

def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    dims = struct.unpack(">" + "I" * (magic & 0xFF), data[4:4 + 4 * (magic & 0xFF)])
    body = bytearray(data[4 + 4 * len(dims):])
    return torch.frombuffer(body, dtype=torch.uint8).view(*dims)


def learning_rate(sched, base, epoch, epochs, step, steps):
    """runtime/train/trainer.cpp's learning_rate: per epoch, or per step for onecycle."""
    if sched["kind"] == "onecycle":
        rise, at = sched["warmup"] * steps, step + 1
        return base * (at / rise if at <= rise else max(0.0, (steps - step) / (steps - rise)))
    if sched["kind"] == "step":
        return base * sched["gamma"] ** (epoch // max(1, sched["every"]))
    if sched["kind"] == "cosine":
        return 0.5 * base * (1 + math.cos(math.pi * epoch / max(1, epochs)))
    return base


def accuracy_mode(argv):
    import argparse
    p = argparse.ArgumentParser(prog="pytorch_mnist.py accuracy")
    p.add_argument("--config", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--params", required=True, help="initial parameters, the ABI's layout")
    p.add_argument("--target", type=float, required=True)
    p.add_argument("--eval-every", type=int, default=0, help="steps; 0: each epoch")
    p.add_argument("--epochs", type=int, required=True)
    a = p.parse_args(argv)
    with open(a.config) as f:
        cfg = json.load(f)
    torch.manual_seed(cfg["seed"])
    torch.set_num_threads(cfg["threads"])
    fmt = format_named(cfg.get("memory_format", "nchw"))
    net = Net(cfg).to(memory_format=fmt)
    net.load_abi(read_floats(a.params))
    o = cfg["optimizer"]
    opt = make_optimizer(net, o)

    def load(images, labels):  # preloaded, [n][1][H][W] with NCHW strides (C = 1 added in front)
        x = read_idx(os.path.join(a.data, images)).float().div_(255.0).unsqueeze(1)
        return x.contiguous(memory_format=fmt), read_idx(os.path.join(a.data, labels)).long()
    train_x, train_y = load("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    test_x, test_y = load("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    batch, count = cfg["batch"], train_x.shape[0]
    gen = torch.Generator().manual_seed(cfg["seed"])

    def evaluate():
        net.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, test_x.shape[0], 1000):
                with autocast(cfg):
                    out = net(test_x[i:i + 1000])
                correct += int((out.argmax(1) == test_y[i:i + 1000]).sum())
        net.train()
        return correct / test_x.shape[0]

    seconds, step = 0.0, 0
    batches = (count + batch - 1) // batch
    every = a.eval_every or batches
    for epoch in range(a.epochs):
        order = torch.randperm(count, generator=gen)
        net.train()
        for b in range(batches):
            for g in opt.param_groups:
                g["lr"] = learning_rate(cfg["schedule"], o["lr"], epoch, cfg["epochs"],
                                        epoch * batches + b, cfg["epochs"] * batches)
            t0 = time.perf_counter()
            idx = order[b * batch:(b + 1) * batch]
            opt.zero_grad(set_to_none=True)
            with autocast(cfg):
                out = net(train_x[idx])
            loss = loss_of(net, out.float(), train_y[idx])
            loss.backward()
            opt.step()
            seconds += time.perf_counter() - t0
            step += 1
            if step % every == 0 or b + 1 == batches:
                acc = evaluate()
                print(json.dumps({"epoch": epoch + 1, "step": step, "seconds": seconds,
                                  "accuracy": acc}), flush=True)
                if acc >= a.target:
                    print(json.dumps(dict({"done": True, "reached": True, "epoch": epoch + 1,
                                           "step": step, "seconds": seconds, "accuracy": acc},
                                          **setting())), flush=True)
                    return
    print(json.dumps(dict({"done": True, "reached": False, "epoch": a.epochs, "step": step,
                           "seconds": seconds, "accuracy": evaluate()}, **setting())), flush=True)


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if mode == "serve":
        serve()
    elif mode == "accuracy":
        accuracy_mode(sys.argv[2:])
    else:
        reply({"error": f"unknown mode '{mode}' (serve or accuracy)"})
        sys.exit(2)
