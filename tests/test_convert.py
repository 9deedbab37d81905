"""RNA-FM import: a random small ``fm.BioBertModel`` saved in RNA-FM's checkpoint format, loaded by ``fm``'s own
loader and by ``genesis-rna convert``, must compute the same embeddings and MLM logits; bad files are refused."""

from __future__ import annotations

import argparse
import os
import pickle
import warnings

import pytest
import torch

from genesis_rna.cli import main
from genesis_rna.errors import CheckpointError
from genesis_rna.model.encoder import GenesisRNAModel
from genesis_rna.model.rna_fm import (
    RNA_FM_DROPPED_TOKENS,
    RNA_FM_INDEX_FOR_ID,
    RNA_FM_TOKENS,
    convert_rna_fm,
    load_rna_fm_checkpoint,
)
from genesis_rna.tokenization import MASK_ID, RNATokenizer

TOL = 1e-4
LAYERS, WIDTH, HEADS, FFN, POSITIONS = 2, 64, 4, 128, 40
SEQS_UNEVEN = [("a", "GGGAACCUUAGCUAGCUAGGAUC"), ("b", "ACGUN"), ("c", "UUAGCNNGCAUACGAU")]
SEQS_EVEN = [("a", "GGGAACCUUAGC"), ("b", "ACGUNACGUACG")]


def _fm():
    return pytest.importorskip("fm")


def _args(fairseq_names: bool, **overrides) -> argparse.Namespace:
    values = {"layers": LAYERS, "embed_dim": WIDTH, "ffn_embed_dim": FFN, "attention_heads": HEADS}
    if fairseq_names:  # how RNA-FM_pretrained.pth names them; fm.pretrained strips "encoder_"
        values = {f"encoder_{k}": v for k, v in values.items()}
    return argparse.Namespace(**{"arch": "roberta_large", "max_positions": POSITIONS, "dropout": 0.1,
                                 "attention_dropout": 0.1, "token_dropout": True, **values, **overrides})


def _random_fm_model(emb_layer_norm_before: bool = True, seed: int = 0, scale: float = 0.2):
    fm = _fm()
    alphabet = fm.Alphabet.from_architecture("roberta_large", theme="rna")
    args = _args(False, emb_layer_norm_before=emb_layer_norm_before)
    model = fm.BioBertModel(args, alphabet)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # every weight random, norms and biases included, so no mapping error can hide
        for name, param in model.named_parameters():  # lm_head.weight is embed_tokens.weight: listed once
            offset = 1.0 if name.endswith("norm.weight") else 0.0
            param.copy_(offset + scale * torch.randn(param.shape, generator=gen))
    return model.eval(), alphabet


def _save_rna_fm_checkpoint(model, path, fairseq_names: bool = True) -> None:
    """``{"args": Namespace, "model": state_dict}``; with fairseq names as in RNA-FM_pretrained.pth, whose keys
    ``fm.pretrained`` strips (``encoder.sentence_encoder.layers.0...``, ``encoder.lm_head...``)."""
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("contact_head")}
    if fairseq_names:
        state = {(f"encoder.{k}" if k.startswith("lm_head") else f"encoder.sentence_encoder.{k}"): v
                 for k, v in state.items()}
    args = _args(fairseq_names, emb_layer_norm_before=model.emb_layer_norm_before is not None)
    torch.save({"args": args, "model": state}, path)


def _load_with_fm(path):
    """The reference: fm's own loader (it calls torch.load on a Namespace, which torch 2.13 refuses by default)."""
    fm = _fm()
    with torch.serialization.safe_globals([argparse.Namespace]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Regression weights not found")  # RNA-FM ships none either
        model, alphabet = fm.pretrained.rna_fm_t12(str(path))
    return model.eval(), alphabet


def _tokens(alphabet, seqs, mask_positions=()):
    _, _, fm_tokens = alphabet.get_batch_converter()(seqs)
    ids = RNATokenizer().batch_convert(seqs)[2]
    for row, col in mask_positions:
        fm_tokens[row, col] = alphabet.mask_idx
        ids[row, col] = MASK_ID
    return fm_tokens, ids


def _max_diffs(fm_model, ours, fm_tokens, ids):
    layers = list(range(LAYERS + 1))
    with torch.no_grad():  # whatever mode the models are in
        ref = fm_model(fm_tokens, repr_layers=layers)
        out = ours(ids, repr_layers=layers)
    real = ids != 0
    assert torch.equal(real, fm_tokens != fm_model.padding_idx)
    reps = {layer: (ref["representations"][layer][real] - out["representations"][layer][real]).abs().max().item()
            for layer in layers}
    logits = ref["logits"][..., list(RNA_FM_INDEX_FOR_ID)][real]
    return reps, (logits - out["mlm_logits"][real]).abs().max().item()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rnafm")
    model, _ = _random_fm_model()
    path = tmp / "RNA-FM_pretrained.pth"
    _save_rna_fm_checkpoint(model, path)
    ref, alphabet = _load_with_fm(path)
    out_dir = tmp / "converted"
    convert_rna_fm(path, out_dir)
    return path, out_dir, ref, alphabet


def test_alphabet_matches_fm():
    fm = _fm()
    alphabet = fm.Alphabet.from_architecture("roberta_large", theme="rna")
    assert tuple(alphabet.all_toks) == RNA_FM_TOKENS
    assert len(RNA_FM_DROPPED_TOKENS) == 16


@pytest.mark.parametrize("seqs, masks", [
    (SEQS_UNEVEN, ()),                    # padding
    (SEQS_EVEN, ()),                      # no padding
    (SEQS_UNEVEN, ((0, 3), (0, 9), (2, 5))),  # padding and [MASK] tokens (token dropout rescaling)
    (SEQS_EVEN, ((1, 1),)),
])
def test_embeddings_and_logits_match_fm(converted, seqs, masks):
    _, out_dir, ref, alphabet = converted
    ours = GenesisRNAModel.from_pretrained(out_dir)
    fm_tokens, ids = _tokens(alphabet, seqs, masks)
    reps, logits = _max_diffs(ref, ours, fm_tokens, ids)
    assert max(reps.values()) < TOL, reps
    assert logits < TOL, logits


def test_train_mode_matches_fm(converted):
    """fm.BioBertModel has no dropout; the converted model has none either, so train mode (token dropout on
    [MASK] rows included) computes the same function, and fine-tuning starts from the same model."""
    _, out_dir, ref, alphabet = converted
    ours = GenesisRNAModel.from_pretrained(out_dir).train()
    assert ours.config.dropout == 0.0 and ours.config.attention_dropout == 0.0
    fm_tokens, ids = _tokens(alphabet, SEQS_UNEVEN, ((1, 2),))
    try:
        reps, logits = _max_diffs(ref.train(), ours, fm_tokens, ids)
    finally:
        ref.eval()
    assert max(reps.values()) < TOL and logits < TOL, (reps, logits)


def test_without_embedding_norm_and_plain_names(tmp_path):
    """A checkpoint whose keys and args carry no fairseq prefixes, and without emb_layer_norm_before."""
    model, alphabet = _random_fm_model(emb_layer_norm_before=False, seed=1)
    path = tmp_path / "RNA-FM_pretrained.pth"
    _save_rna_fm_checkpoint(model, path, fairseq_names=False)
    ref, _ = _load_with_fm(path)
    ours = convert_rna_fm(path)
    assert not ours.config.embed_norm and ours.config.token_dropout
    fm_tokens, ids = _tokens(alphabet, SEQS_UNEVEN, ((1, 2),))
    reps, logits = _max_diffs(ref, ours, fm_tokens, ids)
    assert max(reps.values()) < TOL and logits < TOL, (reps, logits)


def test_cli_convert_then_embed(converted, tmp_path, capsys):
    np = pytest.importorskip("numpy")
    path, _, ref, alphabet = converted
    out_dir = tmp_path / "rna-fm"
    assert main(["convert", "rna-fm", str(path), str(out_dir)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("converted RNA-FM") and "\n" not in line
    assert sorted(os.listdir(out_dir)) == ["config.json", "model.safetensors"]
    fasta = tmp_path / "seqs.fa"
    fasta.write_text("".join(f">{name}\n{seq}\n" for name, seq in SEQS_UNEVEN))
    emb = tmp_path / "emb.npz"
    assert main(["embed", str(fasta), "--model", str(out_dir), "--include", "per_tok", "--device", "cpu",
                 "--dtype", "fp32", "--output", str(emb), "--quiet"]) == 0
    fm_tokens, _ = _tokens(alphabet, SEQS_UNEVEN)
    with torch.no_grad():
        final = ref(fm_tokens, repr_layers=[LAYERS])["representations"][LAYERS]
    data = np.load(emb)
    for row, (name, seq) in enumerate(SEQS_UNEVEN):
        per_tok = data[f"{name}/per_tok_layer{LAYERS}"]
        assert per_tok.shape == (len(seq), WIDTH)
        assert np.abs(per_tok - final[row, 1:len(seq) + 1].numpy()).max() < TOL


def test_bf16_output(converted, tmp_path):
    path = converted[0]
    convert_rna_fm(path, tmp_path / "bf16", dtype=torch.bfloat16)
    assert GenesisRNAModel.from_pretrained(tmp_path / "bf16").config.embed_norm


# ------------------------------------------------------------------------------------------------ bad input


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_pickled_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"args": argparse.Namespace(arch="roberta_large"), "model": {}, "extra": _Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match="refused: the file holds exec") as info:
        load_rna_fm_checkpoint(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()
    # the legacy (non-zip) pickle format too
    legacy = tmp_path / "evil_legacy.pth"
    with open(legacy, "wb") as fh:
        pickle.dump({"args": None, "model": _Exploit(marker)}, fh, protocol=2)
    with pytest.raises(CheckpointError):
        load_rna_fm_checkpoint(legacy)
    assert not marker.exists()


@pytest.mark.parametrize("content, message", [
    (os.urandom(2048), "not a PyTorch checkpoint"),
    (b"", "not a PyTorch checkpoint"),
])
def test_garbage_files(tmp_path, content, message):
    path = tmp_path / "x.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        convert_rna_fm(path, tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_not_a_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        convert_rna_fm(tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="not a file"):
        convert_rna_fm(tmp_path)


def _tiny_state():
    _fm()
    model, _ = _random_fm_model()
    return {k: v for k, v in model.state_dict().items() if not k.startswith("contact_head")}


@pytest.mark.parametrize("payload, message", [
    (torch.zeros(3), "expected a dict with 'args' and 'model'"),
    ({"model": {}}, "expected a dict with 'args' and 'model'"),
    ({"args": [1, 2], "model": {}}, "'args' is a list"),
    ({"args": argparse.Namespace(arch="roberta_large"), "model": {"w": 1}}, "not a state dict of tensors"),
    ({"args": argparse.Namespace(arch="roberta_large", layers=2), "model": {}}, "args lack embed_dim"),
])
def test_wrong_layout(tmp_path, payload, message):
    path = tmp_path / "x.pth"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=message):
        convert_rna_fm(path)


def test_wrong_keys_architecture_and_shapes(tmp_path):
    state = _tiny_state()
    path = tmp_path / "x.pth"
    cases = [
        (_args(False), {**state, "foo.weight": torch.zeros(1)}, "unexpected foo.weight"),
        (_args(False), {k: v for k, v in state.items() if not k.startswith("layers.1.")}, "missing layers.1."),
        (_args(False, arch="protein_bert_base"), state, "unsupported architecture 'protein_bert_base'"),
        (_args(False, max_positions=POSITIONS + 5), state, "embed_positions.weight"),
        (_args(False, attention_heads=5), state, "must be divisible"),
        (_args(False), {**state, "embed_tokens.weight": torch.zeros(73, WIDTH)}, "codon vocabulary"),
    ]
    for args, weights, message in cases:
        torch.save({"args": args, "model": weights}, path)
        with pytest.raises(CheckpointError, match=message):
            convert_rna_fm(path)


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    path = tmp_path / "x.pth"
    path.write_bytes(b"not a checkpoint at all")
    assert main(["convert", "rna-fm", str(path), str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("genesis-rna: error:")
    assert not (tmp_path / "out").exists()
