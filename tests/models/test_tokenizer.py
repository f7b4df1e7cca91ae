"""The offline CLIP tokenizer against known ids and a naive byte-level BPE written here."""

from __future__ import annotations

import gzip
from importlib import resources

import pytest
import regex

from t2v.errors import T2VError
from t2v.models.tokenizer import clip_tokenizer, load_tokenizer

# Known ids of openai/clip-vit-large-patch14's tokenizer (the one Stable Diffusion v1 ships).
CAT_IDS = [49406, 320, 1125, 539, 320, 2368, 49407]

STRINGS = [
    "a photo of a cat",
    "An astronaut riding a horse on Mars, 4k!!",
    "don't stop: it's 2024, we'll see -- they'd said",
    "  multiple   spaces\tand\nnewlines  ",
    "café naïve Zürich, ß and œuvre",
    "emoji \U0001f431\U0001f680 and \u65e5\u672c\u8a9e text",
    "a jeep car is moving on the road, cartoon style",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
]


@pytest.fixture(scope="module")
def naive_bpe():
    """CLIP's tokenization, re-derived here from the vocabulary file without transformers.

    Bytes -> printable stand-ins: the Latin-1 characters Python calls printable (minus space) stand
    for themselves, the remaining bytes get 256, 257, ...; words are split by CLIP's regex; each word
    is merged greedily, lowest merge rank first (one pair at a time).
    """
    raw = resources.files("t2v.assets").joinpath("bpe_simple_vocab_16e6.txt.gz").read_bytes()
    merges = [tuple(line.split()) for line in gzip.decompress(raw).decode().split("\n")[1 : 49152 - 256 - 2 + 1]]
    direct = [b for b in range(256) if chr(b).isprintable() and b != 0x20]
    rest = [b for b in range(256) if b not in direct]
    sym = {**{b: chr(b) for b in direct}, **{b: chr(256 + i) for i, b in enumerate(rest)}}
    base = [sym[b] for b in direct + rest]
    vocab = {t: i for i, t in enumerate(base + [s + "</w>" for s in base] + [a + b for a, b in merges])}
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    rank = {m: r for r, m in enumerate(merges)}
    pat = regex.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+")

    def encode(text: str) -> list[int]:
        text = " ".join(text.split()).lower()
        ids = [vocab["<|startoftext|>"]]
        for word in pat.findall(text):
            parts = [sym[b] for b in word.encode("utf-8")]
            parts[-1] += "</w>"
            while len(parts) > 1:
                best = min(range(len(parts) - 1), key=lambda i: rank.get((parts[i], parts[i + 1]), 1e9))
                if (parts[best], parts[best + 1]) not in rank:
                    break
                parts[best : best + 2] = [parts[best] + parts[best + 1]]
            ids += [vocab[p] for p in parts]
        return ids + [vocab["<|endoftext|>"]]

    encode.vocab_size = len(vocab)
    return encode


def test_known_ids_and_size():
    tok = clip_tokenizer()
    assert tok("a photo of a cat").input_ids == CAT_IDS
    assert len(tok) == 49408
    assert tok.model_max_length == 77
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (49406, 49407, 49407)


def test_matches_naive_bpe(naive_bpe):
    assert naive_bpe.vocab_size == 49408
    assert naive_bpe("a photo of a cat") == CAT_IDS
    tok = clip_tokenizer()
    for s in STRINGS:
        assert tok(s).input_ids == naive_bpe(s), s


def test_padding_and_truncation():
    tok = clip_tokenizer()
    out = tok(["", "a cat " * 100], padding="max_length", max_length=77, truncation=True).input_ids
    assert out[0] == [49406] + [49407] * 76  # the unconditional ("") prompt
    assert len(out[1]) == 77 and out[1][0] == 49406 and out[1][-1] == 49407
    assert out[1][1:5] == [320, 2368, 320, 2368]


def test_save_and_reload_round_trip(tmp_path):
    tok = clip_tokenizer()
    tok.save_pretrained(tmp_path / "tokenizer")
    again = load_tokenizer(tmp_path)
    assert again is not tok  # read from the folder, not the cached offline one
    for s in STRINGS:
        assert again(s).input_ids == tok(s).input_ids
    assert len(again) == 49408 and again.model_max_length == 77 and again.pad_token == "<|endoftext|>"


def test_load_prefers_folder_files(tmp_path):
    # A model folder's own tokenizer wins over the built-in one: an added token shows it was read.
    import copy

    tok = copy.deepcopy(clip_tokenizer())
    tok.add_tokens(["<sks>"])
    tok.save_pretrained(tmp_path / "tokenizer")
    loaded = load_tokenizer(tmp_path)
    assert len(loaded) == 49409
    assert loaded("a <sks> cat").input_ids == [49406, 320, 49408, 2368, 49407]
    assert len(clip_tokenizer()) == 49408  # the cached one is untouched


def test_missing_or_empty_folder_falls_back(tmp_path):
    assert load_tokenizer(tmp_path) is clip_tokenizer()
    (tmp_path / "tokenizer").mkdir()
    assert load_tokenizer(tmp_path) is clip_tokenizer()


def test_damaged_folder_is_a_clear_error(tmp_path):
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    (folder / "vocab.json").write_text("{not json")
    (folder / "merges.txt").write_text("#version: 0.2\n")
    with pytest.raises(T2VError, match="tokenizer"):
        load_tokenizer(tmp_path)
