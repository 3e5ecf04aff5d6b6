"""The base layer: errors, atomic writes, media I/O (ffmpeg, probing, decoding, PNG frames, bitstream
facts), the catalogue, manifests and splits, dataset readers, the MATLAB bicubic scaler, metrics and
device helpers. It imports nothing from the rest of the project and prints nothing."""
