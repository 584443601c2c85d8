"""TRC² modules: router weights normalised, top-k and causal; pooled contexts past-only; columns' maths."""

import torch

from trainers.methods.trc.layer import (
    ColumnLinear,
    Prefix,
    RoutingSlot,
    ThalamicRouter,
    causal_mean,
    past_chunk_mean,
)


def _router(uniform: bool = False, columns: int = 4, top_k: int = 2) -> ThalamicRouter:
    torch.manual_seed(0)
    return ThalamicRouter(
        16, columns, 8, top_k, 2, chunk_size=4, uniform=uniform, slot=RoutingSlot(), prefix=Prefix()
    )


def test_router_weights_are_normalised_over_exactly_top_k_columns() -> None:
    router = _router()
    gates = router(torch.randn(3, 11, 16))  # (batch, seq, columns)
    assert (gates >= 0).all()
    torch.testing.assert_close(gates.sum(-1), torch.ones(3, 11))
    assert ((gates > 0).sum(-1) == 2).all()
    assert router.slot.gates is gates
    # Divisive normalisation: within each group of 2 the probabilities sum to ~1.
    assert router.probabilities is not None
    torch.testing.assert_close(
        router.probabilities.view(3, 11, 2, 2).sum(-1), torch.ones(3, 11, 2), atol=1e-5, rtol=0
    )


def test_routing_is_causal_a_later_change_never_moves_earlier_gates() -> None:
    router = _router()
    hidden = torch.randn(2, 12, 16)
    before = router(hidden).clone()
    for position in (3, 4, 9):  # inside the first chunk, at a chunk start, in a later chunk
        changed = hidden.clone()
        changed[:, position] += 5 * torch.randn(16)
        after = router(changed)
        torch.testing.assert_close(after[:, :position], before[:, :position], atol=0, rtol=0)
        assert not torch.allclose(after[:, position:], before[:, position:])  # the change does matter


def test_past_context_is_the_mean_of_earlier_chunks_only() -> None:
    hidden = torch.arange(6.0).view(1, 6, 1)  # positions 0..5, chunks of 2
    past = past_chunk_mean(hidden, chunk_size=2).flatten().tolist()
    assert past == [0.0, 0.0, 0.5, 0.5, 1.5, 1.5]  # chunk 0: none; chunk 1: mean(0, 1); chunk 2: mean(0..3)
    assert causal_mean(hidden).flatten().tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    # Left padding (positions 0 and 1) is left out of both means.
    mask = torch.tensor([[0, 0, 1, 1, 1, 1]])
    assert past_chunk_mean(hidden, chunk_size=2, mask=mask).flatten().tolist() == [
        0.0,
        0.0,
        0.0,
        0.0,
        2.5,
        2.5,
    ]
    assert causal_mean(hidden, mask).flatten().tolist() == [0.0, 0.0, 2.0, 2.5, 3.0, 3.5]


def test_uniform_ablation_mixes_every_column_equally() -> None:
    router = _router(uniform=True)
    assert list(router.parameters()) == []
    torch.testing.assert_close(router(torch.randn(2, 5, 16)), torch.full((2, 5, 4), 0.25))


def test_load_balance_is_one_when_routing_is_uniform_and_z_loss_matches_its_definition() -> None:
    router = _router()
    mask = torch.ones(2, 7)
    router(torch.randn(2, 7, 16))
    balance, z = router.auxiliary_losses(mask)
    assert router.logits is not None
    torch.testing.assert_close(z, (torch.logsumexp(router.logits, -1) ** 2).mean())
    # Forced uniform: every column is chosen for half the slots and has probability 1/2 in its group.
    router.probabilities = torch.full((2, 7, 4), 0.5)
    router.slot.gates = torch.tensor([0.5, 0.5, 0.0, 0.0]).repeat(2, 7, 1)
    router.slot.gates[1] = torch.tensor([0.0, 0.0, 0.5, 0.5])
    balance, _ = router.auxiliary_losses(mask)
    assert balance.item() == 1.0
    # Padding does not count: masking row 1 out gives row 0's losses alone.
    router(torch.randn(2, 7, 16))
    masked = router.auxiliary_losses(torch.tensor([[1.0] * 7, [0.0] * 7]))
    assert router.logits is not None and router.probabilities is not None and router.slot.gates is not None
    router.logits, router.probabilities = router.logits[:1], router.probabilities[:1]
    router.slot.gates = router.slot.gates[:1]
    alone = router.auxiliary_losses(torch.ones(1, 7))
    torch.testing.assert_close(masked, alone)


def test_column_layer_adds_stable_and_gated_plastic_updates() -> None:
    torch.manual_seed(0)
    base = torch.nn.Linear(6, 5)
    slot = RoutingSlot()
    column = ColumnLinear(base, columns=3, r=2, stable_r=4, alpha=4.0, dropout=0.0, slot=slot)
    x = torch.randn(2, 4, 6)  # (batch, seq, in)
    slot.gates = torch.softmax(torch.randn(2, 4, 3), -1)
    torch.testing.assert_close(column(x), base(x))  # B and the stable column start at zero
    with torch.no_grad():
        column.lora_B.normal_()
        column.stable_A.normal_()
        column.stable_B.normal_()
    plastic = sum(
        slot.gates[..., k : k + 1] * (x @ column.lora_A[k].T @ column.lora_B[:, k].T) for k in range(3)
    )
    expected = base(x) + 2.0 * (plastic + x @ column.stable_A.T @ column.stable_B.T)
    torch.testing.assert_close(column(x), expected)
    usage = torch.tensor([0.2, 0.3, 0.5])
    delta = sum(usage[k] * column.lora_B[:, k] @ column.lora_A[k] for k in range(3))
    B, A = column.update_factors(usage, rate=0.5)
    torch.testing.assert_close(B @ A, column.stable_B @ column.stable_A + 0.5 * delta)
