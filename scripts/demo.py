"""A one-minute tour of the library: the op, its RNN form, and a streaming Backbone with constant memory."""
import torch

import aaren


def main():
    torch.manual_seed(0)
    scores, values = torch.randn(2, 4, 1000), torch.randn(2, 4, 1000, 32)  # (B, H, N), (B, H, N, D)
    outputs = {name: aaren.scan(scores, values, backend=name) for name in ["naive", "hillis_steele", "chunked"]}
    for name, o in outputs.items():
        print(f"scan[{name:13s}] max |o - naive| = {(o - outputs['naive']).abs().max():.2e}")

    for kind in ["aaren", "transformer"]:
        model = aaren.Backbone(kind=kind, d_model=128, n_layers=3, n_heads=4, d_ff=512, dropout=0.1).eval()
        x = torch.randn(1, 512, 128)
        with torch.no_grad():
            parallel, state, streamed = model(x), model.init_state(1), []
            for t in range(x.shape[1]):
                y_t, state = model.step(x[:, t], state)
                streamed.append(y_t)
        error = (torch.stack(streamed, 1) - parallel).abs().max()
        print(f"{kind:11s} parallel vs streaming max error {error:.1e}; "
              f"state after 512 tokens: {aaren.state_nbytes(state):,} bytes")


if __name__ == "__main__":
    main()
