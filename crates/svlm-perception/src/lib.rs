//! svlm-perception: turning ordinary photos into metric 3D for synthesis — metric monocular depth
//! (Depth Anything V2: DINOv2 encoder + DPT head, HF layout) and camera intrinsics.
