"""How far apart a model's text encoder puts two prompts that differ in one word (max abs difference of
the final hidden states), for direction words and for shape words. A diagnostic for issue 7: a text
encoder trained with a text-to-image prior on single frames has no reason to keep directions apart.

    PYTHONPATH=src python tools/default_model/direction_words.py [MODEL_DIR]
"""
import sys

import torch

from t2v.pipelines import TextToVideoPipeline

pipe = TextToVideoPipeline.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else None, device="cpu")
pairs = [("a red circle moving left", "a red circle moving right"), ("a red circle moving up", "a red circle moving down"),
         ("a red circle moving left", "a red square moving left"), ("a red circle moving left", "a blue circle moving left")]
with torch.no_grad():
    for a, b in pairs:
        e = pipe.encode_text([a, b])
        print(f"{a!r} vs {b!r}: max |diff| {(e[0] - e[1]).abs().max().item():.4f}")
