from common import *
from diffusers import UNet2DConditionModel
from t2v.models import inflate
inflate(UNet2DConditionModel.from_pretrained(DM + "/image/unet"), "video-ldm").save_pretrained(DM + "/image_video/unet")
