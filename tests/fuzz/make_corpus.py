#!/usr/bin/env python3
"""Writes the seed corpora of the binary readers' fuzz targets: tests/fuzz/corpus/{idx,
checkpoint,pictures}/. Each holds a few small valid files and slightly broken ones, so that the
fuzzer starts inside every branch of its reader. The files are committed; run this again only
to change them (the output is the same bytes every time). The .cnn seeds in corpus/check are
written by hand."""

import gzip
import pathlib
import struct
import zlib

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"


def write(target, name, data):
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def gz(data):
    return gzip.compress(data, mtime=0)


# IDX (see runtime/data/idx.hpp): magic 00 00 08 <rank>, big-endian u32 dimensions, bytes.
def idx(dims, payload, type_code=0x08):
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def images(count, rows, cols):
    return bytes((i * 7 + j) % 256 for i in range(count) for j in range(rows * cols))


def write_idx():
    three = idx([3, 4, 4], images(3, 4, 4))
    labels = idx([3], bytes([7, 0, 9]))
    write("idx", "images3.idx", three)
    write("idx", "images3.idx.gz", gz(three))
    write("idx", "labels3.idx", labels)
    write("idx", "labels3.idx.gz", gz(labels))
    write("idx", "truncated.idx", three[:-5])
    write("idx", "trailing.idx", three + b"xyz")
    write("idx", "huge_count.idx", idx([1 << 30, 28, 28], b""))
    write("idx", "huge_count.idx.gz", gz(idx([1 << 20, 28, 28], bytes(64))))
    write("idx", "zero_dimension.idx", idx([2, 0, 28], b""))
    write("idx", "float_type.idx", idx([1, 1, 1], bytes(4), type_code=0x0D))
    compressed = gz(three)
    bad_crc = bytearray(compressed)
    bad_crc[-8] ^= 0xFF
    write("idx", "bad_crc.idx.gz", bytes(bad_crc))
    write("idx", "cut.idx.gz", compressed[: len(compressed) // 2])
    write("idx", "two_members.idx.gz", gz(three[:20]) + gz(three[20:]))
    write("idx", "garbage_after.idx.gz", compressed + b"xyz")


# Checkpoints (see runtime/train/checkpoint.hpp); the fuzzer expects model digest 0x1234.
def checkpoint(params, optimizer, digest=0x1234, version=2, count=None, settings=b"seed=7\nthreads=2\n"):
    count = len(params) if count is None else count
    out = b"CNNCCKPT" + struct.pack("<IIQIIqqdqqd", version, len(settings), digest, 2, 5, 99, count,
                                    1.5, 40, 160, 0.25)
    out += settings
    out += struct.pack(f"<{len(params)}f", *params) + struct.pack(f"<{len(optimizer)}f", *optimizer)
    return out + struct.pack("<I", zlib.crc32(out))


def write_checkpoint():
    valid = checkpoint([1.5, -2.0, 3.25], [0, 1, 2, 3, 4, 5])
    write("checkpoint", "valid.ckpt", valid)
    write("checkpoint", "truncated.ckpt", valid[:-5])
    flipped = bytearray(valid)
    flipped[50] ^= 1
    write("checkpoint", "flipped.ckpt", bytes(flipped))
    write("checkpoint", "other_model.ckpt", checkpoint([1.0, 2.0, 3.0], [0] * 6, digest=0x9999))
    write("checkpoint", "other_count.ckpt", checkpoint([1.0], [0, 0]))
    write("checkpoint", "version1.ckpt", checkpoint([1.0, 2.0, 3.0], [0] * 6, version=1))
    write("checkpoint", "version3.ckpt", checkpoint([1.0, 2.0, 3.0], [0] * 6, version=3))
    write("checkpoint", "huge_count.ckpt", checkpoint([], [], count=1 << 60))
    write("checkpoint", "bad_settings.ckpt", checkpoint([1.0, 2.0, 3.0], [0] * 6, settings=b"seed"))
    write("checkpoint", "not_a_checkpoint.ckpt", b"hello, checkpoint\n")


# PNG: signature, then chunks of length, type, data and CRC (see cli/pictures.cpp).
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(rows, cols, colour_type, channels, width=None, height=None, raw=None, interlace=0):
    if raw is None:
        raw = b"".join(b"\0" + bytes((r * cols + c) * 9 % 256 for c in range(cols * channels))
                       for r in range(rows))
    ihdr = struct.pack(">IIBBBBB", width or cols, height or rows, 8, colour_type, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


# The rows of an interlaced 8-bit grey picture: the seven Adam7 passes, each row a filter byte
# and its samples.
def adam7_rows(rows, cols):
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)]
    return b"".join(b"\0" + bytes(10 * y + x for x in range(x0, cols, dx))
                    for x0, y0, dx, dy in passes if x0 < cols for y in range(y0, rows, dy))


def pnm(magic, cols, rows, maxval, samples):
    return f"{magic}\n# a comment\n{cols} {rows}\n{maxval}\n".encode() + samples


def write_pictures():
    grey = png(28, 28, 0, 1)
    write("pictures", "grey.png", grey)
    write("pictures", "rgb.png", png(4, 4, 2, 3))
    write("pictures", "truncated.png", grey[:60])
    bad_crc = bytearray(grey)
    bad_crc[50] ^= 1
    write("pictures", "bad_crc.png", bytes(bad_crc))
    write("pictures", "no_iend.png", grey[:-12])
    write("pictures", "huge.png", png(1, 1, 0, 1, width=100000, height=100000))
    write("pictures", "too_much_data.png", png(28, 28, 0, 1, raw=bytes(28 * 29 + 2000)))
    write("pictures", "interlaced.png", png(3, 5, 0, 1, raw=adam7_rows(3, 5), interlace=1))
    write("pictures", "grey.pgm", pnm("P5", 28, 28, 255, images(1, 28, 28)))
    write("pictures", "maxval0.pgm", pnm("P5", 28, 28, 0, images(1, 28, 28)))
    write("pictures", "sixteen_bit.pgm", pnm("P5", 4, 4, 65535, images(1, 4, 8)))
    write("pictures", "truncated.pgm", pnm("P5", 28, 28, 255, images(1, 28, 20)))
    write("pictures", "colour.ppm", pnm("P6", 4, 4, 255, images(1, 4, 12)))
    three = idx([3, 28, 28], images(3, 28, 28))
    write("pictures", "images3.idx", three)
    write("pictures", "images3.idx.gz", gz(three))


if __name__ == "__main__":
    write_idx()
    write_checkpoint()
    write_pictures()
