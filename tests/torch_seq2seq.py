"""A sequence-to-sequence model written from the standard equations in PyTorch: the reference that
tests/test_seq2seq.py checks rs.seq2seq against and benchmarks/bench_seq2seq.py times it against.
PyTorch's own nn.RNN / nn.LSTM / nn.GRU for the encoder and the decoder, teacher forcing (zeros,
then the previous one-hot target), Luong et al. (2015)'s global attention with each score by hand."""
import torch

import rnnsym as rs

MODULES = {"elman": "RNN", "lstm": "LSTM", "gru": "GRU"}


class TorchSeq2seq(torch.nn.Module):
    """The reference model: encoder and decoder are PyTorch's modules, teacher forcing feeds the
    decoder zeros then the previous one-hot target, attention follows Luong et al. (2015)."""

    def __init__(self, encoder, decoder, attention, input_size, hidden_size, output_size, seed=0,
                 dtype=torch.float64):
        super().__init__()
        I, H, V = input_size, hidden_size, output_size
        torch.manual_seed(seed)
        self.encoder = getattr(torch.nn, MODULES[encoder])(I, H, batch_first=True, dtype=dtype)
        self.decoder = getattr(torch.nn, MODULES[decoder])(V, H, batch_first=True, dtype=dtype)
        self.attention = attention
        shapes = {"W_hy": (V, H), "b_y": (V,)}
        if attention:
            shapes.update(W_cc=(H, H), W_ch=(H, H), b_c=(H,))
            shapes.update({"general": {"W_a": (H, H)}, "dot": {},
                           "additive": {"W_k": (H, H), "W_q": (H, H), "v_a": (H,)}}[attention])
        self.extra = torch.nn.ParameterDict({n: torch.nn.Parameter(torch.randn(*s, dtype=dtype) * 0.5)
                                             for n, s in shapes.items()})

    def _handover(self, final):
        """The decoder's initial state from the encoder's last (h and c where both are LSTMs)."""
        h = final[0] if isinstance(final, tuple) else final
        if isinstance(self.decoder, torch.nn.LSTM):
            c = final[1] if isinstance(final, tuple) else torch.zeros_like(h)
            return (h, c)
        return h

    def logits(self, x, onehot):
        enc, final = self.encoder(x)
        inputs = torch.cat([torch.zeros_like(onehot[:, :1]), onehot[:, :-1]], dim=1)
        s, _ = self.decoder(inputs, self._handover(final))
        top, p = s, self.extra
        if self.attention:
            if self.attention == "additive":
                u = torch.tanh((enc @ p["W_k"].T)[:, None] + (s @ p["W_q"].T)[:, :, None])  # (B, T, S, H)
                e = u @ p["v_a"]
            else:
                q = s if self.attention == "dot" else s @ p["W_a"].T
                e = q @ enc.transpose(1, 2)  # (B, T, S)
            alpha = torch.softmax(e, dim=-1)
            ctx = alpha @ enc
            top = torch.tanh(ctx @ p["W_cc"].T + s @ p["W_ch"].T + p["b_c"])
        return top @ p["W_hy"].T + p["b_y"]

    def params(self) -> dict:
        """The same weights under rnnsym's names (the decoder's with ``_dec``)."""
        out = rs.params_from_torch(self.encoder)
        out.pop("W_hy", None), out.pop("b_y", None)
        decoder = rs.params_from_torch(self.decoder)
        out.update({f"{k}_dec": v for k, v in decoder.items() if k not in ("W_hy", "b_y")})
        out.update({k: v.detach().numpy() for k, v in self.extra.items()})
        return out

    def gradients(self) -> dict:
        out = rs.params_from_torch({k: v.grad for k, v in self.encoder.named_parameters()})
        decoder = rs.params_from_torch({k: v.grad for k, v in self.decoder.named_parameters()})
        out.update({f"{k}_dec": v for k, v in decoder.items()})
        out.update({k: v.grad.numpy() for k, v in self.extra.items()})
        return out
