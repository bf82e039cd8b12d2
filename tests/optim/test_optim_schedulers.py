"""Learning-rate schedulers against torch.optim.lr_scheduler, and their state dicts."""

from __future__ import annotations

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.optim import OptimizerError
from spiraltorch_nb.optim import lr_scheduler as S

torch = pytest.importorskip("torch")
TS = torch.optim.lr_scheduler


def _opts(lrs: tuple[float, ...] = (0.1, 0.03)) -> tuple:
    ours = st.optim.SGD([{"params": [st.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs], lr=lrs[0])
    ref = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs], lr=lrs[0])
    return ours, ref


def _sequence(opt: object, sched: object, steps: int) -> list[list[float]]:
    out = []
    for _ in range(steps):
        out.append(list(sched.get_last_lr()))
        assert out[-1] == [g["lr"] for g in opt.param_groups]
        opt.step()
        sched.step()
    return out


BUILDERS = {
    "StepLR": (lambda o: S.StepLR(o, step_size=3, gamma=0.5), lambda o: TS.StepLR(o, step_size=3, gamma=0.5)),
    "MultiStepLR": (lambda o: S.MultiStepLR(o, [2, 5, 5, 9], gamma=0.3),
                    lambda o: TS.MultiStepLR(o, [2, 5, 5, 9], gamma=0.3)),
    "ExponentialLR": (lambda o: S.ExponentialLR(o, gamma=0.9), lambda o: TS.ExponentialLR(o, gamma=0.9)),
    "CosineAnnealingLR": (lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
                          lambda o: TS.CosineAnnealingLR(o, T_max=10, eta_min=0.001)),
    "LinearLR": (lambda o: S.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=6),
                 lambda o: TS.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=6)),
    "ConstantLR": (lambda o: S.ConstantLR(o, factor=0.5, total_iters=4),
                   lambda o: TS.ConstantLR(o, factor=0.5, total_iters=4)),
    "LambdaLR": (lambda o: S.LambdaLR(o, lambda e: 1.0 / (1 + e)), lambda o: TS.LambdaLR(o, lambda e: 1.0 / (1 + e))),
}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_scheduler_sequences_match_torch(name: str) -> None:
    ours_opt, ref_opt = _opts()
    build_ours, build_ref = BUILDERS[name]
    ours = _sequence(ours_opt, build_ours(ours_opt), 25)  # cosine goes past T_max and back up
    ref = _sequence(ref_opt, build_ref(ref_opt), 25)
    np.testing.assert_allclose(ours, ref, rtol=1e-13, atol=1e-16)
    assert len({round(v[0], 12) for v in ours}) >= 2  # the schedule actually changes


def test_linear_warmup_matches_torch_linearlr_sequentiallr() -> None:
    ours_opt, ref_opt = _opts()
    ours = S.LinearWarmup(ours_opt, warmup_steps=5, start_factor=0.1,
                          after=S.CosineAnnealingLR(ours_opt, T_max=12, eta_min=0.0005))
    warm = TS.LinearLR(ref_opt, start_factor=0.1, end_factor=1.0, total_iters=5)
    cos = TS.CosineAnnealingLR(ref_opt, T_max=12, eta_min=0.0005)
    ref = TS.SequentialLR(ref_opt, [warm, cos], milestones=[5])
    a = _sequence(ours_opt, ours, 30)
    b = _sequence(ref_opt, ref, 30)
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-16)
    # the ramp rises to the base rate at the milestone, then the cosine decays
    assert a[0][0] == pytest.approx(0.01) and a[5][0] == pytest.approx(0.1) and a[10][0] < 0.1


def test_linear_warmup_default_ramp_and_constant_after() -> None:
    opt, _ = _opts((1.0,))
    sched = S.LinearWarmup(opt, warmup_steps=4)
    lrs = [v[0] for v in _sequence(opt, sched, 7)]
    np.testing.assert_allclose(lrs, [0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0])


def test_sequential_and_chained_match_torch() -> None:
    ours_opt, ref_opt = _opts()
    ours = S.SequentialLR(ours_opt, [S.ExponentialLR(ours_opt, 0.8), S.StepLR(ours_opt, 2, 0.5)], milestones=[4])
    ref = TS.SequentialLR(ref_opt, [TS.ExponentialLR(ref_opt, 0.8), TS.StepLR(ref_opt, 2, 0.5)], milestones=[4])
    np.testing.assert_allclose(_sequence(ours_opt, ours, 12), _sequence(ref_opt, ref, 12), rtol=1e-13)
    ours_opt, ref_opt = _opts()
    ours = S.ChainedScheduler([S.ExponentialLR(ours_opt, 0.9), S.StepLR(ours_opt, 3, 0.5)])
    ref = TS.ChainedScheduler([TS.ExponentialLR(ref_opt, 0.9), TS.StepLR(ref_opt, 3, 0.5)])
    np.testing.assert_allclose(_sequence(ours_opt, ours, 12), _sequence(ref_opt, ref, 12), rtol=1e-13)


@pytest.mark.parametrize("make", [
    lambda o: S.CosineAnnealingLR(o, T_max=8),
    lambda o: S.LinearWarmup(o, warmup_steps=3, after=S.StepLR(o, 2, 0.5)),
])
def test_scheduler_state_dict_resumes(make: object) -> None:
    opt, _ = _opts()
    sched = make(opt)
    for _ in range(5):
        opt.step()
        sched.step()
    saved_opt, saved = opt.state_dict(), sched.state_dict()
    tail = _sequence(opt, sched, 6)
    opt2, _ = _opts()
    sched2 = make(opt2)  # as in PyTorch: build both, then load both
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved)
    assert "optimizer" not in saved
    np.testing.assert_allclose(_sequence(opt2, sched2, 6), tail, rtol=1e-15)


def test_scheduler_errors() -> None:
    opt, _ = _opts()
    with pytest.raises(OptimizerError, match="T_max"):
        S.CosineAnnealingLR(opt, T_max=0)
    with pytest.raises(OptimizerError, match="warmup_steps"):
        S.LinearWarmup(opt, warmup_steps=0)
    other, _ = _opts()
    with pytest.raises(OptimizerError, match="another optimizer"):
        S.LinearWarmup(opt, warmup_steps=2, after=S.StepLR(other, 2))
    with pytest.raises(OptimizerError, match="param_groups"):
        S.StepLR(object(), 2)
