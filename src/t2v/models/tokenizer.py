"""The CLIP tokenizer, built offline from the BPE vocabulary shipped in the package.

Stable Diffusion's text encoder is CLIP ViT-L/14's; its tokenizer is the byte-level BPE of Radford et
al. 2021 ("Learning Transferable Visual Models From Natural Language Supervision"). A model folder
without `tokenizer/` files still works: the vocabulary (`t2v/assets/bpe_simple_vocab_16e6.txt.gz`,
MIT, from openai/CLIP) is turned into the `vocab.json` + `merges.txt` pair that transformers'
`CLIPTokenizer` reads. The tokenization itself is transformers'; only the file conversion is here.

Vocabulary layout (49,408 ids), as CLIP builds it:
  0..255       the 256 byte symbols (bytes mapped to printable unicode characters)
  256..511     the same symbols with the end-of-word marker `</w>`
  512..49405   one id per merge, in merge-rank order (the two halves joined)
  49406        `<|startoftext|>`
  49407        `<|endoftext|>` (also the padding token, as in Stable Diffusion v1's tokenizer)
"""

from __future__ import annotations

import gzip
import json
import tempfile
from functools import lru_cache
from importlib import resources
from pathlib import Path

from transformers import CLIPTokenizer

from t2v.errors import T2VError

MAX_LENGTH = 77  # CLIP's context length
VOCAB_SIZE = 49408
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
END_OF_WORD = "</w>"
_N_MERGES = VOCAB_SIZE - 2 * 256 - 2  # 48,894 merges are used of the 262,144 in the file
_VOCAB_ASSET = "bpe_simple_vocab_16e6.txt.gz"


def byte_to_symbol() -> dict[int, str]:
    """Byte value -> the unicode character that stands for it, in CLIP's vocabulary order.

    Byte-level BPE (GPT-2, CLIP) needs a printable character per byte: the 188 printable Latin-1
    bytes stand for themselves and come first (in byte order); the other 68 bytes (controls, space,
    soft hyphen, ...) get the code points 256, 257, ... in byte order. Iterating the dict gives ids 0..255.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\N{INVERTED EXCLAMATION MARK}"), ord("\N{NOT SIGN}") + 1),
        *range(ord("\N{REGISTERED SIGN}"), ord("\N{LATIN SMALL LETTER Y WITH DIAERESIS}") + 1),
    ]
    kept = set(printable)
    others = [b for b in range(256) if b not in kept]
    table = {b: chr(b) for b in printable}
    table.update({b: chr(256 + i) for i, b in enumerate(others)})
    return table


def read_merges() -> list[tuple[str, str]]:
    """The 48,894 BPE merges CLIP uses, in rank order, from the shipped vocabulary file."""
    data = resources.files("t2v.assets").joinpath(_VOCAB_ASSET).read_bytes()
    lines = gzip.decompress(data).decode("utf-8").split("\n")
    # Line 0 is a version header; CLIP keeps the next 48,894 lines.
    merges = [tuple(line.split()) for line in lines[1 : 1 + _N_MERGES]]
    bad = [m for m in merges if len(m) != 2]
    if len(merges) != _N_MERGES or bad:
        raise T2VError(f"the shipped CLIP vocabulary {_VOCAB_ASSET} is damaged; reinstall t2v")
    return merges  # type: ignore[return-value]


def clip_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """Token -> id for CLIP's 49,408-entry vocabulary (layout in the module docstring)."""
    symbols = list(byte_to_symbol().values())
    tokens = symbols + [s + END_OF_WORD for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise T2VError(f"the shipped CLIP vocabulary {_VOCAB_ASSET} has duplicate tokens; reinstall t2v")
    return vocab


def write_tokenizer_files(folder: Path) -> None:
    """Write `vocab.json` and `merges.txt` (the files transformers' CLIPTokenizer reads) to `folder`."""
    merges = read_merges()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(clip_vocab(merges), ensure_ascii=False), encoding="utf-8")
    text = "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"
    (folder / "merges.txt").write_text(text, encoding="utf-8")


@lru_cache(maxsize=1)
def _offline_tokenizer() -> CLIPTokenizer:
    # The files only live while the tokenizer is built: it keeps everything in memory afterwards.
    with tempfile.TemporaryDirectory(prefix="t2v-clip-tokenizer-") as tmp:
        write_tokenizer_files(Path(tmp))
        return CLIPTokenizer.from_pretrained(
            tmp,
            model_max_length=MAX_LENGTH,
            bos_token=BOS,
            eos_token=EOS,
            unk_token=EOS,
            pad_token=EOS,
        )


def clip_tokenizer() -> CLIPTokenizer:
    """CLIP's tokenizer (max length 77, pad = `<|endoftext|>`), built offline; cached per process.

    Callers that modify the tokenizer (e.g. add tokens) should `copy.deepcopy` it first.
    """
    return _offline_tokenizer()


def load_tokenizer(model_dir: str | Path) -> CLIPTokenizer:
    """The tokenizer of a diffusers-layout model folder: `model_dir/tokenizer` if it holds files,
    else the offline CLIP tokenizer."""
    folder = Path(model_dir) / "tokenizer"
    if folder.is_dir() and any(folder.iterdir()):
        try:
            return CLIPTokenizer.from_pretrained(folder)
        except Exception as exc:  # the `tokenizers` backend raises bare Exception on bad files
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise T2VError(
                f"cannot read the tokenizer in {folder} ({reason}); "
                "fix or delete that folder to use the built-in CLIP tokenizer"
            ) from exc
    return clip_tokenizer()
