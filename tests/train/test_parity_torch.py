"""Training parity with PyTorch: the same MLP and CNN, same initial weights, same batches.

Twenty optimizer steps with SGD + momentum and with AdamW in float64; the loss at every
step must agree within 1e-4 relative. The spiraltorch side runs through the Trainer
(DataLoader without shuffling, per-step losses read from the history), the PyTorch
side is a plain loop.
"""

from __future__ import annotations

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.train import DataLoader, Trainer

torch = pytest.importorskip("torch")

STEPS = 20
BATCH = 16


def _mlp_pair() -> tuple:
    ref = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.Tanh(),
                              torch.nn.Linear(32, 5)).double()
    ours = st.nn.Sequential(st.nn.Linear(20, 32), st.nn.ReLU(), st.nn.Linear(32, 32), st.nn.Tanh(),
                            st.nn.Linear(32, 5)).to(st.float64)
    return ours, ref, (20,)


def _cnn_pair() -> tuple:
    ref = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Conv2d(4, 6, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(6 * 2 * 2, 5)).double()
    ours = st.nn.Sequential(st.nn.Conv2d(1, 4, 3, padding=1), st.nn.ReLU(), st.nn.MaxPool2d(2),
                            st.nn.Conv2d(4, 6, 3), st.nn.ReLU(), st.nn.Flatten(),
                            st.nn.Linear(6 * 2 * 2, 5)).to(st.float64)
    return ours, ref, (1, 8, 8)


OPTIMIZERS = {
    "sgd_momentum": (lambda p: st.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
                     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    "adamw": (lambda p: st.optim.AdamW(p, lr=0.01, weight_decay=0.05),
              lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05)),
}


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_training_losses_match_torch(arch: str, opt_name: str) -> None:
    torch.manual_seed(0)
    ours, ref, in_shape = _mlp_pair() if arch == "mlp" else _cnn_pair()
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((STEPS * BATCH, *in_shape))
    y = rng.integers(0, 5, STEPS * BATCH)

    make_ours, make_ref = OPTIMIZERS[opt_name]
    trainer = Trainer(ours, "cross_entropy", make_ours(ours.parameters()), progress=False, metrics=())
    history = trainer.fit(DataLoader(x, y, batch_size=BATCH), epochs=1)
    ours_losses = history.series("loss")

    topt = make_ref(ref.parameters())
    ref_losses = []
    for i in range(STEPS):
        xb = torch.tensor(x[i * BATCH:(i + 1) * BATCH])
        yb = torch.tensor(y[i * BATCH:(i + 1) * BATCH])
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(ref(xb), yb)
        loss.backward()
        topt.step()
        ref_losses.append(loss.item())

    assert len(ours_losses) == STEPS
    np.testing.assert_allclose(ours_losses, ref_losses, rtol=1e-4)
    assert ref_losses[-1] != ref_losses[0]  # training moved
    # the weights after 20 steps agree too
    for (name, p), q in zip(ours.named_parameters(), ref.parameters(), strict=True):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-6, atol=1e-9, err_msg=name)
