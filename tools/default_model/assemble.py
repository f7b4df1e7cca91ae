"""Build a model folder from stage outputs: python assemble.py VIDEO_UNET_DIR OUT [fp16]"""
from common import *
import shutil
from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, DDPMScheduler
from transformers import CLIPTextModel
from t2v.models.video_unet import VideoUNet
src_unet, out = sys.argv[1], sys.argv[2]
half = len(sys.argv) > 3
shutil.rmtree(out, ignore_errors=True); os.makedirs(out)
dt = torch.float16 if half else torch.float32
VideoUNet.from_pretrained(src_unet).to(dt).save_pretrained(out + "/unet")
CLIPTextModel.from_pretrained(DM + "/image/text_encoder", dtype=torch.float32).save_pretrained(out + "/text_encoder")
AutoencoderKL.from_pretrained(DM + "/vae_final").to(dt).save_pretrained(out + "/vae")
shutil.copytree(DM + "/image/tokenizer", out + "/tokenizer")
ddpm = DDPMScheduler.from_pretrained(DM + "/image/scheduler")
DPMSolverMultistepScheduler.from_config(ddpm.config, algorithm_type="dpmsolver++", solver_order=2).save_pretrained(out + "/scheduler")
json.dump({"_class_name": "TextToVideoPipeline", "_diffusers_version": "0.42.0",
           "unet": ["t2v", "VideoUNet"], "text_encoder": ["transformers", "CLIPTextModel"],
           "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
           "vae": ["diffusers", "AutoencoderKL"],
           "t2v_generation": {"num_inference_steps": int(os.environ.get("STEPS", 15)), "guidance_scale": float(os.environ.get("G", 4.0)),
                              "num_frames": 16, "height": 64, "width": 64, "fps": 8}},
          open(out + "/model_index.json", "w"), indent=2)
print(os.popen(f"du -sh {out}; du -sh {out}/*").read())
