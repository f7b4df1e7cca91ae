"""Video decoding/encoding, frame sampling, caption data sets, ShapesWorld.

Modules (imported directly, so that `import t2v.data.shapes` stays light):
  video_io        read_video, write_video, to_uint8_frames (PyAV)
  sampling        FrameSampling, sample_clip, ClipTooShort
  clip_dataset    ClipDataset: the one skip-and-count mechanism of file-backed data sets
  caption_folder  CaptionFolderDataset (sidecar .txt captions or a CSV/JSONL manifest)
  webvid          WebVidDataset (WebVid-10M metadata CSVs)
  shapes          ShapesWorld constants, render_clip, ShapesWorldDataset
  sources         open_dataset("shapes" | folder | manifest | WebVid CSV)
  preview         preview_grid (the grid video of `t2v data preview`)
"""
