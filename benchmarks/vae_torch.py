"""The PyTorch baseline of the VAE benchmarks: the architecture and batch size of PyTorch's own
VAE example (pytorch/examples, ``vae``: 784-400 ReLU encoder with two 400-20 heads, 20-400 ReLU
decoder with a 400-784 Bernoulli head, Adam at 1e-3, batches of 128, a fresh shuffle every
epoch), written here for binary data: the Bernoulli log-likelihood from logits
(``binary_cross_entropy_with_logits``) and the KL term in closed form. CPU, float32.

Only the optional extra ``bench-torch`` (``torch==2.13.0``) installs torch; the benchmarks that
import this module say so when it is missing.
"""

from __future__ import annotations

import time

import numpy as np


def torch_vae_epochs(X, epochs, *, batch_size=128, hidden=400, latent=20, lr=1e-3, seed=0,
                     threads=2):
    """Train the PyTorch VAE on binary X (N, 784) for ``epochs`` epochs (floor(N / batch)
    batches each, the remainder dropped as in mixbench's minibatch SVI). Returns (seconds per
    epoch (epochs,), mean training ELBO per point of each epoch (epochs,))."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    d = X.shape[1]

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(d, hidden)
            self.loc = nn.Linear(hidden, latent)
            self.raw_scale = nn.Linear(hidden, latent)
            self.dec = nn.Linear(latent, hidden)
            self.out = nn.Linear(hidden, d)

        def neg_elbo(self, x):
            h = F.relu(self.enc(x))
            loc, scale = self.loc(h), F.softplus(self.raw_scale(h)) + 1e-4
            z = loc + scale * torch.randn_like(loc)
            logits = self.out(F.relu(self.dec(z)))
            nll = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kl = 0.5 * torch.sum(scale ** 2 + loc ** 2 - 1.0 - 2.0 * torch.log(scale))
            return nll + kl

    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    data = torch.as_tensor(np.asarray(X, dtype=np.float32))
    n = len(data)
    steps = n // batch_size
    gen = torch.Generator().manual_seed(seed)
    seconds, elbos = [], []
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=gen)[: steps * batch_size].view(steps, batch_size)
        total = 0.0
        for idx in order:
            opt.zero_grad()
            loss = model.neg_elbo(data[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach())
        seconds.append(time.perf_counter() - t0)
        elbos.append(-total / (steps * batch_size))
    return np.array(seconds), np.array(elbos)
