"""SPS reading on plain bytes: parameter sets of real encoders, and SPSs built bit by bit."""

from __future__ import annotations

import contextlib
import random

import pytest

from recorders.parameter_sets import (
    ParameterSetError,
    find_sps,
    join_access_unit,
    nal_units,
    parameter_sets,
    parse_sps,
    reorder_depth,
)

# Captured from GStreamer's encoders (gst-launch videotestsrc 640x360 ! ENCODER ! parse ! byte-stream),
# checked against `ffprobe -show_entries stream=has_b_frames,profile,width,height`.
X264_BASELINE = "6742c01eda0280bfe5c05a83030352800000030080000019478b1750"  # bframes=0
X264_MAIN_B2 = "674d401eeca05017fcb80b5060606a5000000300100000030328f162d960"  # bframes=2 b-adapt=false
X265_B3 = (
    "420101040800000300980800000300003f9000a0402e3e24a52caca94985ffe00020002d41818181000003000100"
    "0003001908"
)  # x265 bframes=3
X265_B0 = (
    "420101040800000300980800000300003f9000a0402e3e24a52dd252617ff80008000b5060606040000003004000"
    "000642"
)  # x265 zerolatency


@pytest.mark.parametrize(
    ("codec", "sps", "profile", "depth"),
    [
        ("h264", X264_BASELINE, 66, 0),
        ("h264", X264_MAIN_B2, 77, 2),
        ("hevc", X265_B3, 4, 2),
        ("hevc", X265_B0, 4, 0),
    ],
)
def test_real_encoders_parameter_sets(codec: str, sps: str, profile: int, depth: int) -> None:
    info = parse_sps(codec, bytes.fromhex(sps))
    assert (info.profile, info.width, info.height, info.reorder_depth, info.declared) == (
        profile,
        640,
        360,
        depth,
        True,
    )


def test_sps_found_behind_start_codes_of_both_lengths_and_the_last_one_wins() -> None:
    aud = b"\x09\xf0"
    keyframe = (
        b"\x00\x00\x00\x01"
        + aud
        + b"\x00\x00\x01"
        + bytes.fromhex(X264_BASELINE)
        + b"\x00\x00\x00\x01\x68\xce\x38\x80"
        + b"\x00\x00\x01\x65\x88\x84"
    )
    units = nal_units(keyframe)
    assert [u[0] & 0x1F for u in units] == [9, 7, 8, 5]
    assert units[1] == bytes.fromhex(X264_BASELINE)  # the 4-byte start code's zero is not kept
    extradata = b"\x00\x00\x00\x01" + bytes.fromhex(X264_MAIN_B2)
    info = reorder_depth("h264", extradata, keyframe)
    assert info is not None and info.profile == 66  # in-band (later) wins over the SDP's
    assert reorder_depth("h264", b"\x00\x00\x01\x65\x88") is None
    assert find_sps("hevc", b"\x00\x00\x01" + bytes.fromhex(X265_B3)) == bytes.fromhex(X265_B3)


class Bits:
    """Builds an H.264 SPS bit by bit (ITU-T H.264 7.3.2.1.1)."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> Bits:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]
        return self

    def ue(self, value: int) -> Bits:
        code = value + 1
        length = code.bit_length()
        return self.u(length - 1, 0).u(length, code)

    def se(self, value: int) -> Bits:
        return self.ue(2 * value - 1 if value > 0 else -2 * value)

    def nal(self) -> bytes:
        bits = [*self.bits, 1]  # rbsp_stop_one_bit
        bits += [0] * (-len(bits) % 8)
        raw = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
        out = bytearray(b"\x67")
        zeros = 0
        for byte in raw:  # emulation prevention, as an encoder writes it
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(out)


def h264_sps(
    profile: int = 100,
    level: int = 30,
    constraints: int = 0,
    poc_type: int = 0,
    width_mbs: int = 40,
    height_mbs: int = 23,
    frame_mbs_only: bool = True,
    scaling: bool = False,
    vui: Bits | None = None,
) -> bytes:
    b = Bits().u(8, profile).u(8, constraints).u(8, level).ue(0)
    if profile in (100, 110, 122, 244):
        b.ue(1).ue(0).ue(0).u(1, 0).u(1, int(scaling))
        if scaling:
            for i in range(8):
                b.u(1, 1)
                for _ in range(16 if i < 6 else 64):
                    b.se(-3)  # delta_scale: values that walk through the whole 0..255 range
    b.ue(0).ue(poc_type)
    if poc_type == 0:
        b.ue(2)
    elif poc_type == 1:
        b.u(1, 0).se(-2).se(1).ue(3).se(4).se(-5).se(6)
    b.ue(4).u(1, 0).ue(width_mbs - 1).ue((height_mbs if frame_mbs_only else height_mbs // 2) - 1)
    b.u(1, int(frame_mbs_only))
    if not frame_mbs_only:
        b.u(1, 0)
    b.u(1, 1).u(1, 1).ue(0).ue(0).ue(0).ue(4)  # direct_8x8, cropping 368 -> 360 lines
    if vui is None:
        b.u(1, 0)
    else:
        b.u(1, 1).bits += vui.bits
    return b.nal()


def vui(reorder: int | None, hrd: bool = True) -> Bits:
    v = Bits().u(1, 1).u(8, 255).u(16, 4).u(16, 3)  # extended SAR
    v.u(1, 1).u(1, 0)  # overscan
    v.u(1, 1).u(3, 5).u(1, 0).u(1, 1).u(8, 1).u(8, 1).u(8, 1)  # video signal type with colour
    v.u(1, 1).ue(0).ue(0)  # chroma location
    v.u(1, 1).u(32, 1).u(32, 50).u(1, 1)  # timing
    for _ in range(2):  # NAL and VCL HRD
        v.u(1, int(hrd))
        if hrd:
            v.ue(1).u(4, 0).u(4, 0)
            for _ in range(2):
                v.ue(1000).ue(2000).u(1, 0)
            v.u(5, 23).u(5, 23).u(5, 23).u(5, 24)
    if hrd:
        v.u(1, 0)  # low_delay_hrd_flag
    v.u(1, 0)  # pic_struct_present_flag
    v.u(1, int(reorder is not None))
    if reorder is not None:
        v.u(1, 1).ue(2).ue(1).ue(16).ue(16).ue(reorder).ue(4)
    return v


def test_declared_depth_read_through_a_full_vui_with_hrd_and_scaling_matrices() -> None:
    info = parse_sps("h264", h264_sps(scaling=True, vui=vui(3)))
    assert (info.width, info.height, info.reorder_depth, info.declared) == (640, 360, 3, True)
    assert parse_sps("h264", h264_sps(vui=vui(0, hrd=False))).reorder_depth == 0


@pytest.mark.parametrize(
    ("kwargs", "depth"),
    [
        ({}, 8),  # level 3.0: MaxDpbMbs 8100 / 920 macroblocks -> 8 frames (Annex E.2.1 inference)
        ({"level": 41}, 16),  # 32768 / 920 = 35 -> capped at the 16 a DPB may hold
        ({"level": 22, "frame_mbs_only": False, "height_mbs": 24}, 8),  # interlaced: 12 map units x 2
        ({"poc_type": 1}, 8),
        ({"poc_type": 2}, 0),  # output order is decoding order
        ({"profile": 66}, 0),  # Baseline: no B slices
        ({"profile": 100, "constraints": 0x10}, 0),  # High 10 Intra style constraint_set3: intra only
        ({"profile": 77, "vui": vui(None)}, 8),  # a VUI without bitstream_restriction infers too
    ],
)
def test_depth_inferred_when_the_sps_does_not_state_it(kwargs: dict[str, object], depth: int) -> None:
    info = parse_sps("h264", h264_sps(**kwargs))  # type: ignore[arg-type]
    assert (info.reorder_depth, info.declared) == (depth, False)


def test_emulation_prevention_bytes_are_removed_before_reading() -> None:
    # width_mbs 1 and scaling lists give runs of zero bytes, so the encoder side inserted 0x03s
    sps = h264_sps(width_mbs=1, height_mbs=1, vui=vui(2))
    assert b"\x00\x00\x03" in sps
    info = parse_sps("h264", sps)
    assert (info.width, info.reorder_depth) == (16, 2)


def test_malformed_parameter_sets_raise_one_error_type_only() -> None:
    rng = random.Random(7)
    for sps in (X264_BASELINE, X264_MAIN_B2, X265_B3):
        raw = bytes.fromhex(sps)
        codec = "hevc" if raw[0] == 0x42 else "h264"
        for cut in range(1, len(raw)):
            with contextlib.suppress(ParameterSetError):
                parse_sps(codec, raw[:cut])
    for _ in range(3000):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        for codec in ("h264", "hevc"):
            try:
                info = parse_sps(codec, b"\x67" + junk if codec == "h264" else b"\x42\x01" + junk)
            except ParameterSetError:
                continue
            assert 0 <= info.reorder_depth <= 16
    with pytest.raises(ParameterSetError, match="no SPS reader"):
        parse_sps("mjpeg", b"\x00")


def test_slices_split_by_repeated_parameter_sets_are_joined_into_one_access_unit() -> None:
    """rtph264pay config-interval=-1: SPS and PPS before every IDR slice."""
    sps, pps = b"\x00\x00\x00\x01" + bytes.fromhex(X264_BASELINE), b"\x00\x00\x00\x01\x68\xce\x38\x80"
    slice0 = b"\x00\x00\x00\x01\x65\x88\x84\x00\x33"
    slice1 = b"\x00\x00\x01\x65\x00\x0a\x21\x7f"
    first = b"\x00\x00\x00\x01\x09\xf0" + sps + pps + slice0
    joined = join_access_unit("h264", first, b"\x00\x00\x00\x01\x09\xf0" + sps + pps + slice1)
    assert joined.startswith(first)  # the first packet's bytes untouched
    assert [u[0] & 0x1F for u in nal_units(joined, len(joined))] == [9, 7, 8, 5, 5]
    assert joined.endswith(slice1[3:])
    other_pps = b"\x00\x00\x00\x01\x68\xde\x3c\x80"  # a different PPS is not a repeat: kept
    kept = join_access_unit("h264", first, other_pps + slice1)
    assert [u[0] & 0x1F for u in nal_units(kept, len(kept))] == [9, 7, 8, 5, 8, 5]


def test_parameter_sets_in_front_of_a_keyframe_or_none_without_an_sps() -> None:
    vps, sps = b"\x00\x00\x00\x01\x40\x01\x0c", b"\x00\x00\x00\x01" + bytes.fromhex(X265_B3)
    pps, idr = b"\x00\x00\x00\x01\x44\x01\xc1", b"\x00\x00\x00\x01\x26\x01\xaf"
    found = parameter_sets("hevc", b"\x00\x00\x00\x01\x46\x01\x50" + vps + sps + pps + idr)
    assert found == vps + sps + pps
    assert parameter_sets("hevc", vps + idr) is None  # a VPS alone cannot start decoding
    assert parameter_sets("h264", b"\x00\x00\x01\x65\x88") is None
