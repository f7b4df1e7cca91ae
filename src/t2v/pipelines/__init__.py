"""What a user runs: text-to-video sampling, Tune-A-Video save / load / invert / edit.

- `load_model_folder(dir) -> ModelParts`, `default_model_dir()` (model_folder.py)
- `TextToVideoPipeline.from_pretrained(dir)(prompts, ...) -> (B, C, F, H, W)` (text_to_video.py)
- `save_tuned`, `load_tuned`, `tuned_parameters`, `add_lora`, `invert_source`, `edit` (tune_a_video.py)
"""

from t2v.pipelines.model_folder import ModelParts, default_model_dir, load_model_folder
from t2v.pipelines.text_to_video import TextToVideoPipeline
from t2v.pipelines.tune_a_video import add_lora, edit, invert_source, load_tuned, save_tuned, tuned_parameters

__all__ = [
    "ModelParts",
    "TextToVideoPipeline",
    "add_lora",
    "default_model_dir",
    "edit",
    "invert_source",
    "load_model_folder",
    "load_tuned",
    "save_tuned",
    "tuned_parameters",
]
