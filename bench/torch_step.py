"""Eager PyTorch reference for `trainer bench`: the same model and training
step (forward, backward, global-norm clip 1.0, AdamW), f32, on random tokens.

    python bench/torch_step.py --shape b --steps 5 --threads 2

Prints one line per shape: `shape B: ... <tokens/s> tokens/s`.
"""

import argparse
import math
import time

import torch
import torch.nn.functional as F

SHAPES = {
    "a": dict(name="A", dim=256, layers=6, heads=8, kv_heads=8, batch=16, seq=256),
    "b": dict(name="B", dim=128, layers=4, heads=4, kv_heads=2, batch=32, seq=128),
    # The default preset's model at its mean training length.
    "c": dict(name="C", dim=64, layers=4, heads=4, kv_heads=2, batch=32, seq=100),
}
VOCAB = 512


def rms_norm(x, g, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g


def rope(x, cos, sin):
    # x: (B, H, T, hd), rotating interleaved pairs (x[2i], x[2i+1]).
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class Block(torch.nn.Module):
    def __init__(self, dim, heads, kv_heads, hidden):
        super().__init__()
        hd = dim // heads
        self.heads, self.kv_heads, self.hd = heads, kv_heads, hd
        self.attention_norm = torch.nn.Parameter(torch.ones(dim))
        self.wq = torch.nn.Linear(dim, heads * hd, bias=False)
        self.wk = torch.nn.Linear(dim, kv_heads * hd, bias=False)
        self.wv = torch.nn.Linear(dim, kv_heads * hd, bias=False)
        self.wo = torch.nn.Linear(heads * hd, dim, bias=False)
        self.ffn_norm = torch.nn.Parameter(torch.ones(dim))
        self.w1 = torch.nn.Linear(dim, hidden, bias=False)
        self.w3 = torch.nn.Linear(dim, hidden, bias=False)
        self.w2 = torch.nn.Linear(hidden, dim, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        h = rms_norm(x, self.attention_norm)
        q = self.wq(h).view(b, t, self.heads, self.hd).transpose(1, 2)
        k = self.wk(h).view(b, t, self.kv_heads, self.hd).transpose(1, 2)
        v = self.wv(h).view(b, t, self.kv_heads, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, enable_gqa=self.kv_heads != self.heads
        )
        x = x + self.wo(y.transpose(1, 2).reshape(b, t, -1))
        h = rms_norm(x, self.ffn_norm)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class Model(torch.nn.Module):
    def __init__(self, s):
        super().__init__()
        dim = s["dim"]
        self.scale = math.sqrt(dim)
        self.embedding = torch.nn.Embedding(VOCAB, dim)
        torch.nn.init.normal_(self.embedding.weight, std=0.02)
        hidden = dim * 8 // 3
        self.blocks = torch.nn.ModuleList(
            Block(dim, s["heads"], s["kv_heads"], hidden) for _ in range(s["layers"])
        )
        self.norm = torch.nn.Parameter(torch.ones(dim))
        hd = dim // s["heads"]
        freqs = 10000.0 ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        ang = torch.arange(s["seq"], dtype=torch.float64)[:, None] * freqs[None, :]
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)

    def forward(self, ids):
        x = self.embedding(ids) * self.scale
        for blk in self.blocks:
            x = blk(x, self.cos, self.sin)
        x = rms_norm(x, self.norm)
        return x @ self.embedding.weight.t()  # tied LM head


def run(s, steps):
    torch.manual_seed(0)
    model = Model(s)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    keep = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [dict(params=decay, weight_decay=0.1), dict(params=keep, weight_decay=0.0)],
        lr=1e-3,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    b, t = s["batch"], s["seq"]
    ids = torch.randint(8, VOCAB, (b, t + 1))
    inputs, targets = ids[:, :-1], ids[:, 1:].reshape(-1)
    weights = torch.ones(b * t)

    def step():
        logits = model(inputs).reshape(b * t, VOCAB)
        nll = F.cross_entropy(logits, targets, reduction="none")
        loss = (nll * weights).sum() / weights.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * b * t / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="all", choices=["a", "b", "c", "all"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for key in ["a", "b", "c"] if args.shape == "all" else [args.shape]:
        s = SHAPES[key]
        tps = run(s, args.steps)
        print(
            f"shape {s['name']}: d{s['dim']} L{s['layers']} H{s['heads']} KV{s['kv_heads']}, "
            f"batch {s['batch']}×{s['seq']}: {tps:.0f} tokens/s (PyTorch {torch.__version__})",
            flush=True,
        )


if __name__ == "__main__":
    main()
