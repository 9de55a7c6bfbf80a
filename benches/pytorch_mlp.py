"""Times PyTorch on pfode's reference MLP, to compare with `pfode bench`.

Same network: [x (D = 2), 32-d sinusoidal time embedding] -> 3 x Linear(256) + SiLU -> Linear(2),
float32, batch 4096, 2 threads, inference (no_grad). Run with any PyTorch 2.x:
    python benches/pytorch_mlp.py
"""
import math
import time
import torch

torch.set_num_threads(2)
D, W, B = 2, 256, 4096
net = torch.nn.Sequential(
    torch.nn.Linear(D + 32, W), torch.nn.SiLU(),
    torch.nn.Linear(W, W), torch.nn.SiLU(),
    torch.nn.Linear(W, W), torch.nn.SiLU(),
    torch.nn.Linear(W, D),
).eval()
x = torch.randn(B, D)
freqs = torch.exp(-math.log(10000.0) * torch.arange(16) / 16)


def forward(t):
    emb = torch.cat([torch.sin(t * freqs), torch.cos(t * freqs)]).expand(B, 32)
    return net(torch.cat([x, emb], dim=1))


with torch.no_grad():
    for _ in range(20):
        forward(500.0)
    times = []
    for i in range(200):
        t0 = time.perf_counter()
        forward(float(i))
        times.append(time.perf_counter() - t0)
times.sort()
print(f"PyTorch {torch.__version__}: {times[len(times) // 2] * 1e3:.2f} ms per forward (median of 200), batch {B}, 2 threads")
