"""Subtitles from a pipeline result: SubRip (.srt) and WebVTT (.vtt), one cue per non-empty clip.

    result = asr("talk.mp4")
    Path("talk.srt").write_text(to_srt(result))
"""


def _clock(seconds: float, separator: str) -> str:
    """`seconds` as HH:MM:SS<separator>mmm."""
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(result: dict) -> str:
    """A pipeline result as SubRip subtitles (one cue per non-empty clip)."""
    cues = [c for c in result["chunks"] if c["text"]]
    lines = []
    for number, cue in enumerate(cues, 1):
        start, end = cue["timestamp"]
        lines += [str(number), f"{_clock(start, ',')} --> {_clock(end, ',')}", cue["text"], ""]
    return "\n".join(lines)


def to_vtt(result: dict) -> str:
    """A pipeline result as WebVTT subtitles (one cue per non-empty clip)."""
    lines = ["WEBVTT", ""]
    for cue in (c for c in result["chunks"] if c["text"]):
        start, end = cue["timestamp"]
        lines += [f"{_clock(start, '.')} --> {_clock(end, '.')}", cue["text"], ""]
    return "\n".join(lines)


__all__ = ["to_srt", "to_vtt"]
