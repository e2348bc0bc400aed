"""A tiny random-weight llama model in GGUF, for running a real ``llama-server`` in tests.

The model has the exact tensor layout and metadata llama.cpp expects for the ``llama``
architecture, a SentencePiece-style vocabulary (``tokenizer.ggml.model = "llama"``) with the 256
byte-fallback pieces ``<0x00>`` … ``<0xFF>`` and a few hundred word pieces, and float32 weights
drawn from a seeded generator. It writes in milliseconds, is a few hundred KB and loads in
milliseconds; what it generates is noise, which is all a token-accounting test needs: the server
tokenizes, decodes, samples and counts exactly as it would for a real model.

Nothing here downloads anything. ``gguf`` (the PyPI package maintained with llama.cpp) is a
test-only dependency and is imported when a file is written, so importing this module costs
nothing where it is not installed.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

ARCHITECTURE = "llama"

# SentencePiece marks a word start with U+2581; llama.cpp's SPM tokenizer turns spaces into it.
WORD_START = "\u2581"

UNK_ID = 0
BOS_ID = 1
EOS_ID = 2
FIRST_BYTE_ID = 3
"""``<0x00>`` has this id; ``<0xFF>`` has ``FIRST_BYTE_ID + 255``."""

# llama.cpp token types (gguf.TokenType), repeated here so building the vocabulary needs no gguf.
TOKEN_NORMAL = 1
TOKEN_UNKNOWN = 2
TOKEN_CONTROL = 3
TOKEN_BYTE = 6

_WORD_TEXT = (
    "the of and to in is that for it with as was on be at by this had not are but from or have an "
    "they which one you were all we her she there would their will when who him been has more if "
    "no out so said what up its about into than them can only other new some could time these two "
    "may then do first any my now such like our over man me even most made after also did many "
    "before must through back years where much your way well down should because each just those "
    "people how too little state good very make world still own see men work long get here "
    "between both life being under never day same another know while last might us great old "
    "year off come since against go came right used take three token tokens cost model server "
    "count prompt cache hello price energy power watt hour request"
)
_WORDS = tuple(_WORD_TEXT.split())

_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""ChatML, so ``/v1/chat/completions`` works without a ``--chat-template`` flag."""


@attrs.frozen
class Vocabulary:
    """Pieces, scores and token types in id order, as the GGUF tokenizer arrays hold them."""

    pieces: tuple[str, ...]
    scores: tuple[float, ...]
    types: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.pieces)

    def byte_id(self, value: int) -> int:
        """The id of the byte-fallback piece for ``value`` (0…255)."""
        if not 0 <= value <= 255:
            raise ValueError(f"a byte is 0…255, got {value}")
        return FIRST_BYTE_ID + value


def build_vocabulary() -> Vocabulary:
    """The fixed vocabulary: 3 control pieces, 256 byte pieces, then word pieces.

    Every word comes with all of its prefixes (``▁t``, ``▁th``, ``▁the``) so llama.cpp's
    bigram-merging SPM tokenizer can reach it; higher scores merge first, as in SentencePiece.
    Text that no piece covers falls back to bytes, so any UTF-8 input tokenizes.
    """
    pieces: list[str] = ["<unk>", "<s>", "</s>"]
    types: list[int] = [TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL]
    scores: list[float] = [0.0, 0.0, 0.0]
    for value in range(256):
        pieces.append(f"<0x{value:02X}>")
        types.append(TOKEN_BYTE)
        scores.append(0.0)

    normal: list[str] = [WORD_START]
    singles = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?:;'\"-()"
    normal.extend(singles)
    normal.extend(WORD_START + ch for ch in singles)
    for word in _WORDS:
        for end in range(2, len(word) + 1):
            normal.append(WORD_START + word[:end])
    seen = set(pieces)
    rank = 0
    for piece in normal:
        if piece in seen:
            continue
        seen.add(piece)
        pieces.append(piece)
        types.append(TOKEN_NORMAL)
        # Longer pieces score higher so whole words win over their fragments.
        scores.append(float(len(piece)) - rank * 1e-4)
        rank += 1
    return Vocabulary(tuple(pieces), tuple(scores), tuple(types))


def _positive(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


@attrs.frozen
class TinyLlamaSpec:
    """Shape of the tiny model. The defaults give about 600 KB of float32 weights."""

    block_count: int = attrs.field(default=2, validator=_positive)
    embedding_length: int = attrs.field(default=64, validator=_positive)
    head_count: int = attrs.field(default=4, validator=_positive)
    head_count_kv: int = attrs.field(default=2, validator=_positive)
    feed_forward_length: int = attrs.field(default=128, validator=_positive)
    context_length: int = attrs.field(default=512, validator=_positive)
    rope_freq_base: float = 10000.0
    rms_norm_eps: float = 1e-5
    name: str = "infercost-tiny-llama"

    def __attrs_post_init__(self) -> None:
        if self.embedding_length % self.head_count:
            raise ValueError(
                f"embedding_length {self.embedding_length} is not a multiple of "
                f"head_count {self.head_count}"
            )
        if self.head_count % self.head_count_kv:
            raise ValueError(
                f"head_count {self.head_count} is not a multiple of "
                f"head_count_kv {self.head_count_kv}"
            )
        if self.head_dim % 2:
            raise ValueError(f"the head dimension {self.head_dim} must be even for RoPE")

    @property
    def head_dim(self) -> int:
        return self.embedding_length // self.head_count


def tensor_shapes(spec: TinyLlamaSpec, vocab_size: int) -> dict[str, tuple[int, ...]]:
    """Every tensor llama.cpp loads for ``llama``, as numpy shapes (rows = GGUF's last dim).

    GGUF lists dimensions fastest-first, so a numpy ``(n_out, n_in)`` matrix is llama.cpp's
    ``{n_in, n_out}``: ``token_embd`` is ``{n_embd, n_vocab}``, ``attn_k`` ``{n_embd, n_embd_kv}``.
    """
    n_embd = spec.embedding_length
    n_q = spec.head_count * spec.head_dim
    n_kv = spec.head_count_kv * spec.head_dim
    n_ff = spec.feed_forward_length
    shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (vocab_size, n_embd)}
    for block in range(spec.block_count):
        prefix = f"blk.{block}."
        shapes[prefix + "attn_norm.weight"] = (n_embd,)
        shapes[prefix + "attn_q.weight"] = (n_q, n_embd)
        shapes[prefix + "attn_k.weight"] = (n_kv, n_embd)
        shapes[prefix + "attn_v.weight"] = (n_kv, n_embd)
        shapes[prefix + "attn_output.weight"] = (n_embd, n_q)
        shapes[prefix + "ffn_norm.weight"] = (n_embd,)
        shapes[prefix + "ffn_gate.weight"] = (n_ff, n_embd)
        shapes[prefix + "ffn_up.weight"] = (n_ff, n_embd)
        shapes[prefix + "ffn_down.weight"] = (n_embd, n_ff)
    shapes["output_norm.weight"] = (n_embd,)
    shapes["output.weight"] = (vocab_size, n_embd)
    return shapes


def random_tensors(
    spec: TinyLlamaSpec, vocab_size: int, seed: int
) -> dict[str, np.ndarray[Any, np.dtype[np.float32]]]:
    """Float32 weights from ``numpy.random.default_rng(seed)``; norm weights are ones."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray[Any, np.dtype[np.float32]]] = {}
    for name, shape in tensor_shapes(spec, vocab_size).items():
        if len(shape) == 1:
            out[name] = np.ones(shape, dtype=np.float32)
        else:
            # Scaled so activations neither vanish nor explode through the blocks.
            scale = 1.0 / np.sqrt(shape[1])
            out[name] = (rng.standard_normal(shape) * scale).astype(np.float32)
    return out


def write_tiny_llama(
    path: str | os.PathLike[str], *, spec: TinyLlamaSpec | None = None, seed: int = 0
) -> Path:
    """Write the model to ``path`` (atomically: a temporary file, then a rename) and return it.

    The same ``spec`` and ``seed`` give byte-identical files.
    """
    spec = spec or TinyLlamaSpec()
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    target = Path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot write the model: {target.parent} is not a directory")
    gguf: Any = importlib.import_module("gguf")
    vocab = build_vocabulary()

    fd, tmp_name = tempfile.mkstemp(prefix=".tinymodel-", suffix=".gguf", dir=target.parent)
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp_name, ARCHITECTURE)
        _add_metadata(writer, gguf, spec, vocab)
        for name, tensor in random_tensors(spec, len(vocab), seed).items():
            writer.add_tensor(name, tensor)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def _add_metadata(writer: Any, gguf: Any, spec: TinyLlamaSpec, vocab: Vocabulary) -> None:
    writer.add_name(spec.name)
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    writer.add_context_length(spec.context_length)
    writer.add_embedding_length(spec.embedding_length)
    writer.add_block_count(spec.block_count)
    writer.add_feed_forward_length(spec.feed_forward_length)
    writer.add_head_count(spec.head_count)
    writer.add_head_count_kv(spec.head_count_kv)
    writer.add_rope_dimension_count(spec.head_dim)
    writer.add_rope_freq_base(spec.rope_freq_base)
    writer.add_layer_norm_rms_eps(spec.rms_norm_eps)
    writer.add_vocab_size(len(vocab))

    writer.add_tokenizer_model("llama")
    writer.add_token_list(list(vocab.pieces))
    writer.add_token_scores(list(vocab.scores))
    writer.add_token_types(list(vocab.types))
    writer.add_unk_token_id(UNK_ID)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(_CHAT_TEMPLATE)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Scalar and string metadata of a GGUF file (arrays omitted), for checks and debugging."""
    gguf: Any = importlib.import_module("gguf")
    reader = gguf.GGUFReader(os.fspath(path))
    out: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if len(field.types) == 1 and field.types[0] != gguf.GGUFValueType.ARRAY:
            out[key] = field.contents()
    return out


def tensor_names(path: str | os.PathLike[str]) -> Sequence[str]:
    """The tensor names stored in a GGUF file, in file order."""
    gguf: Any = importlib.import_module("gguf")
    return [t.name for t in gguf.GGUFReader(os.fspath(path)).tensors]
