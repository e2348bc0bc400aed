"""The tiny llama GGUF: vocabulary, tensor layout, metadata and determinism.

The vocabulary and shapes are checked without ``gguf``; writing and reading a file needs it
(installed in the ``llamacpp`` tox env) and skips otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infercost.testing.tinymodel import (
    BOS_ID,
    EOS_ID,
    TOKEN_BYTE,
    TOKEN_CONTROL,
    TOKEN_NORMAL,
    UNK_ID,
    WORD_START,
    TinyLlamaSpec,
    build_vocabulary,
    random_tensors,
    tensor_shapes,
)


def test_vocabulary_has_specials_all_bytes_and_word_prefixes() -> None:
    vocab = build_vocabulary()
    assert vocab.pieces[UNK_ID] == "<unk>"
    assert (vocab.pieces[BOS_ID], vocab.types[BOS_ID]) == ("<s>", TOKEN_CONTROL)
    assert (vocab.pieces[EOS_ID], vocab.types[EOS_ID]) == ("</s>", TOKEN_CONTROL)
    for value in (0x00, 0x0A, 0x41, 0xFF):
        token = vocab.byte_id(value)
        assert vocab.pieces[token] == f"<0x{value:02X}>"
        assert vocab.types[token] == TOKEN_BYTE
    assert len(set(vocab.pieces)) == len(vocab) == len(vocab.scores) == len(vocab.types)
    # Every multi-character word piece can be reached by merging a shorter piece with one char.
    index = {piece: i for i, piece in enumerate(vocab.pieces)}
    for piece, kind in zip(vocab.pieces, vocab.types, strict=True):
        if kind == TOKEN_NORMAL and len(piece) > 1:
            assert piece[:-1] in index, piece
    assert WORD_START + "token" in index
    assert 300 < len(vocab) < 1000
    with pytest.raises(ValueError, match="0…255"):
        vocab.byte_id(256)


def test_tensor_shapes_follow_llama_cpp_layout() -> None:
    spec = TinyLlamaSpec()
    shapes = tensor_shapes(spec, vocab_size=100)
    assert shapes["token_embd.weight"] == (100, 64)
    assert shapes["output.weight"] == (100, 64)
    assert shapes["blk.1.attn_q.weight"] == (64, 64)
    # Grouped-query attention: 2 KV heads of 16 dimensions.
    assert shapes["blk.1.attn_k.weight"] == (32, 64)
    assert shapes["blk.1.attn_v.weight"] == (32, 64)
    assert shapes["blk.0.ffn_down.weight"] == (64, 128)
    assert len(shapes) == 3 + 9 * spec.block_count


def test_weights_are_seeded_float32() -> None:
    spec = TinyLlamaSpec(block_count=1)
    a = random_tensors(spec, 50, seed=3)
    b = random_tensors(spec, 50, seed=3)
    c = random_tensors(spec, 50, seed=4)
    assert all(t.dtype.name == "float32" for t in a.values())
    assert all((a[name] == b[name]).all() for name in a)
    assert not (a["token_embd.weight"] == c["token_embd.weight"]).all()
    assert (a["blk.0.attn_norm.weight"] == 1).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"embedding_length": 60, "head_count": 8}, "not a multiple of head_count"),
        ({"head_count": 4, "head_count_kv": 3}, "not a multiple of head_count_kv"),
        ({"block_count": 0}, "block_count must be positive"),
        ({"embedding_length": 12, "head_count": 4, "head_count_kv": 1}, "must be even"),
    ],
)
def test_spec_rejects_impossible_shapes(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TinyLlamaSpec(**kwargs)


def test_written_file_is_deterministic_and_carries_llama_metadata(tmp_path: Path) -> None:
    pytest.importorskip("gguf", reason="the gguf package is not installed")
    from infercost.testing.tinymodel import read_metadata, tensor_names, write_tiny_llama

    first = write_tiny_llama(tmp_path / "a.gguf", seed=11)
    second = write_tiny_llama(tmp_path / "b.gguf", seed=11)
    other = write_tiny_llama(tmp_path / "c.gguf", seed=12)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()
    assert first.stat().st_size < 1_000_000
    assert list(tmp_path.glob(".tinymodel-*")) == []

    meta = read_metadata(first)
    assert meta["general.architecture"] == "llama"
    assert meta["llama.embedding_length"] == 64
    assert meta["llama.block_count"] == 2
    assert meta["llama.attention.head_count"] == 4
    assert meta["llama.attention.head_count_kv"] == 2
    assert meta["llama.rope.dimension_count"] == 16
    assert meta["llama.context_length"] == 512
    assert meta["tokenizer.ggml.model"] == "llama"
    assert meta["tokenizer.ggml.bos_token_id"] == BOS_ID
    assert meta["tokenizer.ggml.eos_token_id"] == EOS_ID
    assert "blk.1.ffn_gate.weight" in tensor_names(first)


def test_write_names_a_missing_directory(tmp_path: Path) -> None:
    from infercost.testing.tinymodel import write_tiny_llama

    with pytest.raises(FileNotFoundError, match="is not a directory"):
        write_tiny_llama(tmp_path / "missing" / "m.gguf")
    with pytest.raises(ValueError, match="seed must be non-negative"):
        write_tiny_llama(tmp_path / "m.gguf", seed=-1)
