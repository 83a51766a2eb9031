//! Planning a run: lake parts past the watermark into file tasks with fixed keys.
