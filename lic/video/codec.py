"""Low-delay P-frame video codec: classic block motion + a learned residual coder.

    I-frame:  the shipped image hyperprior codes the frame.
    P-frame:  the encoder estimates block motion against the previous *decoded* frame
              (`lic.video.motion.estimate`), codes the vectors (`lic.video.motion_coding`),
              forms the overlapped-block prediction `pred` (`lic.video.motion.predict`) and
              codes the residual picture  r = clip(x - pred + 128, 0, 255)  with a hyperprior
              fine-tuned on such residuals (`lic train --model video`).
              Decoded frame = clip(pred + r_hat - 128, 0, 255), except in the blocks the
              encoder marks (one bit per 16x16 block) as better predicted alone: there the
              residual coder's small errors would otherwise accumulate over the GOP.

Why it decodes identically everywhere (closed loop, nothing drifts):
- the reference is the decoded 8-bit frame, which the encoder reproduces exactly
  (`HyperpriorCodec.encode_reconstruct` runs the decoder's own synthesis);
- the prediction is integer arithmetic on 8-bit pixels and integer vectors;
- every probability the entropy decoder uses comes from integer tables indexed by decoded
  integers: the motion vectors' tables are chosen by the encoder and sent, and the residual's
  come from its integer hyper-decoder, whose digest is each frame record's digest. No entropy
  parameter is ever computed from a reference frame.

A P-frame's digest (clip format 2) is the residual's digest XOR a digest of its block map and
motion stream, so that a block map changed under a recomputed CRC (any bit string is a valid
map) fails the digest check instead of decoding silently to other pixels.

A video model file holds the residual hyperprior (the same tensors as an image hyperprior
file) and names, by hash, the image model and quality its I-frames use.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from lic import models
from lic.codecs.base import Encoded, as_pixels, as_rgb
from lic.codecs.hyperprior import HyperpriorCodec
from lic.errors import FormatError, ModelError
from lic.video.container import FRAME_I, FRAME_P, FrameRecord
from lic.video.motion import estimate, predict
from lic.video.motion_coding import decode_motion, encode_motion

RESIDUAL_OFFSET = 128
MAP_BLOCK = 16  # side of the blocks where the encoder may keep the prediction alone (one bit each)


def residual_picture(frame: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    return np.clip(frame.astype(np.int16) - prediction + RESIDUAL_OFFSET, 0, 255).astype(np.uint8)


def add_residual(prediction: np.ndarray, residual: np.ndarray) -> np.ndarray:
    return np.clip(prediction.astype(np.int16) + residual - RESIDUAL_OFFSET, 0, 255).astype(np.uint8)


class VideoCodec:
    """Codes one frame at a time against the previous decoded frame."""

    family: ClassVar[str] = "video"
    stride = HyperpriorCodec.stride

    def __init__(self, tensors: dict[str, Tensor], config: dict, device: torch.device) -> None:
        self.quality = int(config["quality"])
        self.block = int(config["block"])
        self.motion_lambda = float(config["motion_lambda"])
        self.residual = HyperpriorCodec(tensors, config, device)
        intra = config["intra"]
        found = models.find_by_hash(bytes.fromhex(intra["hash"]))
        if found is None:
            raise ModelError(f"this video model needs image model {intra['name']} q{intra['quality']} "
                             f"({intra['hash']}) for its I-frames, which is not installed")
        self.intra = models.load_codec(found.path, str(device), int(intra["quality"]))

    def for_quality(self, quality: int) -> "VideoCodec":
        if quality != self.quality:
            raise ModelError(f"this video model codes quality {self.quality}, not {quality}")
        return self

    def encode_frame(self, frame: np.ndarray, reference: np.ndarray | None,
                     picture: tuple[int, int] | None = None) -> tuple[FrameRecord, np.ndarray]:
        """frame: uint8 (H, W, 3), sides multiples of `stride`; picture: (height, width) of the
        source inside the padding. An I-frame when `reference` is None. Returns the record and
        the frame the decoder will reconstruct from it."""
        if reference is None:
            encoded, pixels = self.intra.encode_reconstruct(as_pixels(frame))
            return FrameRecord(FRAME_I, encoded.digest, encoded.streams), as_rgb(pixels)
        vectors = estimate(frame, reference, self.block, lam=self.motion_lambda, picture=picture)
        prediction = predict(reference, vectors, self.block)
        encoded, residual = self.residual.encode_reconstruct(as_pixels(residual_picture(frame, prediction)))
        corrected = add_residual(prediction, as_rgb(residual))
        keep = _block_sse(frame, prediction, MAP_BLOCK) <= _block_sse(frame, corrected, MAP_BLOCK)
        streams = [encode_motion(vectors, self.residual.latent.y.tables), np.packbits(keep).tobytes(), *encoded.streams]
        digest = _bind(encoded.digest, streams[0], streams[1])
        return FrameRecord(FRAME_P, digest, streams), _choose(keep, prediction, corrected, MAP_BLOCK)

    def decode_frame(self, record: FrameRecord, reference: np.ndarray | None, height: int, width: int) -> np.ndarray:
        """The decoded frame (uint8, padded size) of `record`; P-frames need the previous one."""
        if record.kind == FRAME_I:
            return as_rgb(self.intra.decode(Encoded(record.streams, record.digest), height, width))
        if reference is None:
            raise FormatError("the video is corrupted (a P-frame without a reference)")
        blocks = (height // MAP_BLOCK, width // MAP_BLOCK)
        if len(record.streams) != 4 or len(record.streams[1]) != -(-blocks[0] * blocks[1] // 8):
            raise FormatError("the video is corrupted (a P-frame needs motion, block map, z and y streams)")
        vectors = decode_motion(record.streams[0], height // self.block, width // self.block, self.residual.latent.y.tables)
        keep = np.unpackbits(np.frombuffer(record.streams[1], np.uint8))[: blocks[0] * blocks[1]].reshape(blocks)
        prediction = predict(reference, vectors, self.block)
        digest = record.digest if record.version < 2 else _bind(record.digest, record.streams[0], record.streams[1])
        residual = self.residual.decode(Encoded(record.streams[2:], digest), height, width)
        return _choose(keep.astype(bool), prediction, add_residual(prediction, as_rgb(residual)), MAP_BLOCK)


def _bind(digest: bytes, motion: bytes, block_map: bytes) -> bytes:
    """`digest` XOR a 4-byte digest of the side streams; its own inverse (binds and unbinds)."""
    side = hashlib.blake2b(block_map + motion, digest_size=len(digest)).digest()
    return bytes(a ^ b for a, b in zip(digest, side))


def _block_sse(frame: np.ndarray, approximation: np.ndarray, block: int) -> np.ndarray:
    """Squared error per block (blocks_h, blocks_w), in exact integers."""
    error = (frame.astype(np.int64) - approximation) ** 2
    h, w = frame.shape[0] // block, frame.shape[1] // block
    return error.reshape(h, block, w, block, -1).sum(axis=(1, 3, 4))


def _choose(keep_prediction: np.ndarray, prediction: np.ndarray, corrected: np.ndarray, block: int) -> np.ndarray:
    """Per block, the prediction alone where the encoder found the decoded residual made it
    worse (e.g. static areas, where a residual coder's small errors would pile up frame after
    frame), else prediction + residual."""
    mask = np.repeat(np.repeat(keep_prediction, block, axis=0), block, axis=1)[..., None]
    return np.where(mask, prediction, corrected)
