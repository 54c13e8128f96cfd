"""Evidence spans rendered as HTML: escaping, overlaps, kinds."""

from cookbook_core.studio.highlight import highlight, spans_from_evidence


def test_highlight_escapes_and_nests_overlaps() -> None:
    text = "a <b> & c d"
    out = highlight(text, [(2, 5, "exact"), (4, 9, "window")])
    assert "&lt;b" in out and "&gt;" in out and "&amp;" in out and "<b>" not in out
    assert out.count("<mark") == out.count("</mark>") == 3  # "<b", ">", " &"
    assert out.startswith("a ")
    plain = out
    for tag in ("</mark>",):
        plain = plain.replace(tag, "")
    assert "c d" in plain


def test_spans_from_document_qa_evidence() -> None:
    ev = {
        "matches": [
            {"start": 0, "end": 5, "kind": "exact"},
            {"start": 6, "end": 9, "kind": "fuzzy"},
        ],
        "window_after": {"start": 10, "end": 20, "text": "x"},
        "window_before": None,
    }
    spans = spans_from_evidence(ev, [(12, 15)])
    assert (0, 5, "exact") in spans and (6, 9, "fuzzy") in spans
    assert (10, 20, "window") in spans and (12, 15, "gold") in spans
