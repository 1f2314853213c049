"""H.264 / H.265 parameter sets: find them in Annex B bytes and read what the recorder needs.

RTP carries presentation times only, so the recorder rebuilds decoding times itself
(:mod:`recorders.decode_order`), and for that it needs the stream's *reorder depth*: how many
frames may arrive before a frame that is shown earlier (B-frames). The encoder declares it in the
sequence parameter set (SPS): H.265 always (``sps_max_num_reorder_pics``), H.264 in the optional
VUI ``bitstream_restriction`` (``max_num_reorder_frames``); when H.264 leaves it out the standard's
inferred value is the whole decoded picture buffer (Annex E.2.1), which is what we take, except
where the SPS itself rules reordering out.

Pure code (bytes in, numbers out) so it is tested on plain data; every malformed input ends in
:class:`ParameterSetError`, never in an IndexError, so a hostile SPS cannot crash a worker.
"""

from __future__ import annotations

from dataclasses import dataclass

H264_SPS = 7
H265_SPS = 33
# At most this many leading bytes of a keyframe are searched for parameter sets: encoders put them
# (and an access unit delimiter, SEI) in front of the first slice, so the picture is never scanned.
SCAN_BYTES = 4096
MAX_REORDER = 16  # the largest decoded picture buffer either standard allows

# H.264 Table A-1: MaxDpbMbs by level_idc (9 is level 1b).
_MAX_DPB_MBS = {
    9: 396,
    10: 396,
    11: 900,
    12: 2376,
    13: 2376,
    20: 2376,
    21: 4752,
    22: 8100,
    30: 8100,
    31: 18000,
    32: 20480,
    40: 32768,
    41: 32768,
    42: 34816,
    50: 110400,
    51: 184320,
    52: 184320,
    60: 696320,
    61: 696320,
    62: 696320,
}
# Profiles whose SPS carries chroma format, bit depths and scaling matrices (7.3.2.1.1).
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
# Intra-only profiles: with constraint_set3 they cannot reorder (E.2.1).
_INTRA_PROFILES = frozenset({44, 86, 100, 110, 122, 244})
BASELINE = 66
# NAL unit types that may repeat between the slices of one access unit once joined: parameter sets
# (VPS/SPS/PPS) and access unit delimiters (the MPEG-TS muxer writes one per packet it gets).
_REPEATABLE = {"h264": frozenset({7, 8, 9}), "hevc": frozenset({32, 33, 34, 35})}
_DELIMITERS = {"h264": frozenset({9}), "hevc": frozenset({35})}
_PARAMETER_SETS = {"h264": (7, 8), "hevc": (32, 33, 34)}  # (VPS,) SPS, PPS: the SPS second to last


class ParameterSetError(ValueError):
    """The bytes are not a usable SPS (truncated, out-of-range values)."""


@dataclass(frozen=True, slots=True)
class SequenceInfo:
    """What one SPS says, as far as the recorder cares."""

    codec: str  # "h264" | "hevc"
    profile: int
    width: int
    height: int
    reorder_depth: int  # frames that may precede, in decoding order, a frame shown before them
    declared: bool  # the depth is stated in the SPS (False: inferred from the profile and level)


def nal_units(data: bytes, limit: int = SCAN_BYTES) -> list[bytes]:
    """The NAL units (header included, start codes removed) that start in ``data[:limit]``."""
    units: list[bytes] = []
    end = min(len(data), limit)
    starts: list[int] = []
    i = data.find(b"\x00\x00\x01", 0, end)
    while i >= 0:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3, end)
    for n, start in enumerate(starts):
        stop = starts[n + 1] - 3 if n + 1 < len(starts) else len(data)
        unit = data[start:stop]
        # a four-byte start code leaves its first zero at the end of the previous unit
        units.append(unit.rstrip(b"\x00") if n + 1 < len(starts) else unit)
    return units


def nal_type(codec: str, unit: bytes) -> int:
    if not unit:
        return -1
    return (unit[0] >> 1) & 0x3F if codec == "hevc" else unit[0] & 0x1F


def parameter_sets(codec: str, data: bytes) -> bytes | None:
    """The parameter sets (VPS, SPS, PPS) in front of a keyframe as Annex B bytes, or None when it
    carries no SPS. A camera that sends them once (or only in its SDP) leaves later keyframes
    without: the recorder puts the latest ones in front of each segment's first keyframe, so every
    segment decodes alone."""
    wanted = _PARAMETER_SETS[codec]
    units = [unit for unit in nal_units(data) if nal_type(codec, unit) in wanted]
    if not any(nal_type(codec, unit) == wanted[-2] for unit in units):  # no SPS
        return None
    return b"".join(b"\x00\x00\x00\x01" + unit for unit in units)


def find_sps(codec: str, *chunks: bytes) -> bytes | None:
    """The last SPS found in the given Annex B chunks (extradata, a keyframe), or None."""
    wanted = H265_SPS if codec == "hevc" else H264_SPS
    found: bytes | None = None
    for chunk in chunks:
        for unit in nal_units(chunk):
            if nal_type(codec, unit) == wanted:
                found = unit
    return found


def join_access_unit(codec: str, first: bytes, more: bytes) -> bytes:
    """One access unit from two packets of it (libavformat split it): ``first`` unchanged, then the
    NAL units of ``more`` except parameter sets and delimiters that repeat ones already in the unit.

    GStreamer's rtph264pay (``config-interval=-1``) sends SPS and PPS before *every* IDR slice; an
    SPS begins a new access unit, so FFmpeg's parser hands each slice out as a frame of its own and
    a decoder shows three quarters of a four-slice keyframe missing, four times. RTP says otherwise
    (RFC 6184: NAL units with one timestamp are one access unit, the marker bit ends it), so the
    recorder joins them; the dropped units are byte-identical copies, so nothing is lost."""
    repeatable = _REPEATABLE[codec]
    kept_units = nal_units(first, len(first))
    seen = {unit for unit in kept_units if nal_type(codec, unit) in repeatable}
    out = [first]
    for unit in nal_units(more, len(more)):
        if nal_type(codec, unit) in repeatable and (
            unit in seen or nal_type(codec, unit) in _DELIMITERS[codec]
        ):
            continue
        out.append(b"\x00\x00\x00\x01" + unit)
    return b"".join(out)


def parse_sps(codec: str, unit: bytes) -> SequenceInfo:
    """Read an SPS NAL unit (header included, emulation prevention bytes still in)."""
    if codec == "hevc":
        return _parse_h265(_BitReader(_rbsp(unit[2:])))
    if codec == "h264":
        return _parse_h264(_BitReader(_rbsp(unit[1:])))
    raise ParameterSetError(f"no SPS reader for codec {codec!r}")


def reorder_depth(codec: str, *chunks: bytes) -> SequenceInfo | None:
    """The reorder depth declared or implied by the last SPS in ``chunks``; None without an SPS."""
    unit = find_sps(codec, *chunks)
    return None if unit is None else parse_sps(codec, unit)


# -- bit reading ---------------------------------------------------------------------------------
def _rbsp(payload: bytes) -> bytes:
    """Remove emulation prevention bytes (00 00 03 -> 00 00)."""
    if b"\x00\x00\x03" not in payload:
        return payload
    out = bytearray()
    zeros = 0
    for byte in payload:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


class _BitReader:
    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def u(self, bits: int) -> int:
        value = 0
        for _ in range(bits):
            byte = self._pos >> 3
            if byte >= len(self._data):
                raise ParameterSetError("SPS ends early")
            value = (value << 1) | ((self._data[byte] >> (7 - (self._pos & 7))) & 1)
            self._pos += 1
        return value

    def flag(self) -> bool:
        return self.u(1) == 1

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ParameterSetError("exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)

    def skip(self, bits: int) -> None:
        while bits > 0:
            step = min(bits, 32)
            self.u(step)
            bits -= step


def _bounded(value: int, high: int, what: str) -> int:
    if not 0 <= value <= high:
        raise ParameterSetError(f"SPS {what} {value} out of range 0..{high}")
    return value


# -- H.264 (ITU-T H.264 7.3.2.1.1, E.1.1) --------------------------------------------------------
def _parse_h264(r: _BitReader) -> SequenceInfo:
    profile = r.u(8)
    constraints = r.u(8)
    level = r.u(8)
    _bounded(r.ue(), 31, "seq_parameter_set_id")
    chroma_format = 1
    if profile in _HIGH_PROFILES:
        chroma_format = _bounded(r.ue(), 3, "chroma_format_idc")
        if chroma_format == 3:
            r.skip(1)  # separate_colour_plane_flag
        r.ue()  # bit_depth_luma_minus8
        r.ue()  # bit_depth_chroma_minus8
        r.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if r.flag():  # seq_scaling_matrix_present_flag
            for i in range(12 if chroma_format == 3 else 8):
                if r.flag():
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = _bounded(r.ue(), 2, "pic_order_cnt_type")
    if poc_type == 0:
        r.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        r.skip(1)  # delta_pic_order_always_zero_flag
        r.se()
        r.se()
        for _ in range(_bounded(r.ue(), 255, "num_ref_frames_in_pic_order_cnt_cycle")):
            r.se()
    r.ue()  # max_num_ref_frames
    r.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = _bounded(r.ue(), 1023, "pic_width_in_mbs_minus1") + 1
    height_units = _bounded(r.ue(), 1023, "pic_height_in_map_units_minus1") + 1
    frame_mbs_only = r.flag()
    if not frame_mbs_only:
        r.skip(1)  # mb_adaptive_frame_field_flag
    r.skip(1)  # direct_8x8_inference_flag
    height_mbs = height_units * (1 if frame_mbs_only else 2)
    crop = (0, 0, 0, 0)
    if r.flag():  # frame_cropping_flag
        crop = (r.ue(), r.ue(), r.ue(), r.ue())
    sub_w = 1 if chroma_format == 3 else 2
    sub_h = (1 if chroma_format in (2, 3) else 2) * (1 if frame_mbs_only else 2)
    if chroma_format == 0:
        sub_w, sub_h = 1, 2 - int(frame_mbs_only)
    width = width_mbs * 16 - sub_w * (crop[0] + crop[1])
    height = height_mbs * 16 - sub_h * (crop[2] + crop[3])
    declared: int | None = None
    if r.flag():  # vui_parameters_present_flag
        declared = _h264_vui_reorder(r)
    if declared is not None:
        depth, is_declared = declared, True
    elif poc_type == 2 or profile == BASELINE:
        # POC type 2 derives output order from decoding order; Baseline has no B slices
        depth, is_declared = 0, False
    elif profile in _INTRA_PROFILES and constraints & 0x10:
        depth, is_declared = 0, False
    else:
        max_dpb_mbs = _MAX_DPB_MBS.get(level, 696320)
        depth, is_declared = min(max_dpb_mbs // (width_mbs * height_mbs), MAX_REORDER), False
    return SequenceInfo("h264", profile, width, height, min(depth, MAX_REORDER), is_declared)


def _skip_scaling_list(r: _BitReader, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt != 0:
            nxt = (last + r.se() + 256) % 256
        last = last if nxt == 0 else nxt


def _h264_vui_reorder(r: _BitReader) -> int | None:
    """max_num_reorder_frames from the VUI (E.1.1), None when bitstream_restriction is absent."""
    if r.flag() and r.u(8) == 255:  # aspect_ratio_info_present_flag, aspect_ratio_idc Extended_SAR
        r.skip(32)
    if r.flag():  # overscan_info_present_flag
        r.skip(1)
    if r.flag():  # video_signal_type_present_flag
        r.skip(4)
        if r.flag():
            r.skip(24)
    if r.flag():  # chroma_loc_info_present_flag
        r.ue()
        r.ue()
    if r.flag():  # timing_info_present_flag
        r.skip(65)
    nal_hrd = r.flag()
    if nal_hrd:
        _skip_h264_hrd(r)
    vcl_hrd = r.flag()
    if vcl_hrd:
        _skip_h264_hrd(r)
    if nal_hrd or vcl_hrd:
        r.skip(1)  # low_delay_hrd_flag
    r.skip(1)  # pic_struct_present_flag
    if not r.flag():  # bitstream_restriction_flag
        return None
    r.skip(1)
    for _ in range(4):
        r.ue()
    reorder = _bounded(r.ue(), MAX_REORDER, "max_num_reorder_frames")
    _bounded(r.ue(), MAX_REORDER, "max_dec_frame_buffering")
    return reorder


def _skip_h264_hrd(r: _BitReader) -> None:
    count = _bounded(r.ue(), 31, "cpb_cnt_minus1") + 1
    r.skip(8)
    for _ in range(count):
        r.ue()
        r.ue()
        r.skip(1)
    r.skip(20)


# -- H.265 (ITU-T H.265 7.3.2.2) -----------------------------------------------------------------
def _parse_h265(r: _BitReader) -> SequenceInfo:
    r.skip(4)  # sps_video_parameter_set_id
    sub_layers = _bounded(r.u(3), 6, "sps_max_sub_layers_minus1")
    r.skip(1)  # sps_temporal_id_nesting_flag
    r.skip(2 + 1)  # general_profile_space, general_tier_flag
    profile = r.u(5)
    r.skip(32 + 4 + 43 + 1)  # compatibility flags, source flags, constraint bits
    r.skip(8)  # general_level_idc
    present = [(r.flag(), r.flag()) for _ in range(sub_layers)]
    if sub_layers > 0:
        r.skip(2 * (8 - sub_layers))
    for profile_present, level_present in present:
        if profile_present:
            r.skip(88)
        if level_present:
            r.skip(8)
    _bounded(r.ue(), 15, "sps_seq_parameter_set_id")
    chroma_format = _bounded(r.ue(), 3, "chroma_format_idc")
    if chroma_format == 3:
        r.skip(1)
    width = _bounded(r.ue(), 16888, "pic_width_in_luma_samples")
    height = _bounded(r.ue(), 16888, "pic_height_in_luma_samples")
    if r.flag():  # conformance_window_flag
        sub_w = 2 if chroma_format in (1, 2) else 1
        sub_h = 2 if chroma_format == 1 else 1
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    r.ue()  # bit_depth_luma_minus8
    r.ue()  # bit_depth_chroma_minus8
    r.ue()  # log2_max_pic_order_cnt_lsb_minus4
    all_layers = r.flag()  # sps_sub_layer_ordering_info_present_flag
    reorder = 0
    for _ in range(0 if all_layers else sub_layers, sub_layers + 1):
        r.ue()  # sps_max_dec_pic_buffering_minus1
        reorder = _bounded(r.ue(), MAX_REORDER, "sps_max_num_reorder_pics")  # the highest layer's wins
        r.ue()  # sps_max_latency_increase_plus1
    return SequenceInfo("hevc", profile, max(width, 0), max(height, 0), reorder, True)
